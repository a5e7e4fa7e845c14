"""Quality of the bundled fast-style models, measured against Gatys and the bare photo.

For every bundled model and every photo in ``../shared/content`` (long side ``--size``):
VGG16 style loss (Gram matrices, relu1_2..relu4_3) against the model's painting and
content loss (relu3_3) against the photo; the same for a Gatys result of our own engine
(on the first ``--gatys-images`` photos, ``--gatys-iterations`` full-size steps) and for
the unstylised photo. Losses are the normalised terms of ``nst_core.losses`` (relative
squared errors), the painting is taken at the size the model was trained with.

Targets: a model's mean style loss within 3x of Gatys's and at least 10x below the
photo's. The grid score (``grid_score.py``: the 4-pixel grid of the network's upsampling
in the luminance spectrum) is the mean over the photos, with the photos' own below.
Prints markdown tables (totals, then the style loss by VGG layer);
``--contact-sheet FILE`` also writes a grid of the stylised photos (rows: photos,
columns: styles; no painting is shown). ``--reference
MODEL=PAINTING`` adds a row for another model as a baseline on the same yardstick, e.g.
the fully trained udnie model of PyTorch's ``fast_neural_style`` example.

    python bench/quality_report.py --gatys-images 4 --gatys-iterations 100 \\
        --contact-sheet docs/contact-sheet.jpg \\
        --reference ../shared/models/pytorch-examples/udnie.pth=udnie_picabia.jpg
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from nst_core.fast import stylize_fast
from nst_core.gatys import GatysParams, stylize_gatys
from nst_core.images import load_image, resize, save_image, to_pixels
from nst_core.losses import (
    JOHNSON_STYLE_WEIGHTS,
    content_loss,
    grams,
    style_layer_loss,
    style_loss,
)
from nst_core.paths import bundled_styles_dir
from nst_core.transformer_net import StyleModel, load_style_model
from nst_core.vgg import VGGFeatures

from grid_score import grid_score
from machine import SHARED, VGG16_WEIGHTS

CONTENT_LAYER = "relu3_3"
STYLE_WEIGHTS = dict(JOHNSON_STYLE_WEIGHTS)
MAX_STYLE_RATIO_TO_GATYS = 3.0
MIN_GAIN_OVER_PHOTO = 10.0
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # VGG runs there


@dataclass(frozen=True)
class Score:
    """One image on the yardstick: style loss (and each layer's term) and content loss."""

    style: float
    content: float
    layers: dict[str, float]


@dataclass
class Scores:
    style: list[float] = field(default_factory=list)
    content: list[float] = field(default_factory=list)
    layers: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in STYLE_WEIGHTS}
    )

    def add(self, score: Score) -> None:
        self.style.append(score.style)
        self.content.append(score.content)
        for name, value in score.layers.items():
            self.layers[name].append(value)

    @staticmethod
    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")


def fit(image: torch.Tensor, long_side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    factor = long_side / max(h, w)
    return resize(image, (max(1, round(h * factor)), max(1, round(w * factor))))


@dataclass
class Measured:
    """What the yardstick sees of one image: its Gram matrices and content features."""

    grams: dict[str, torch.Tensor]
    content: torch.Tensor


@dataclass
class Photos:
    """Photos by name, each with what the yardstick sees of it (taken once for all models)."""

    images: dict[str, torch.Tensor]
    measured: dict[str, Measured]


class Judge:
    """The fixed VGG16 yardstick: style and content losses of an image."""

    def __init__(self, weights: Path) -> None:
        self.vgg = VGGFeatures("vgg16", [CONTENT_LAYER, *STYLE_WEIGHTS], weights).to(DEVICE)

    @torch.no_grad()
    def style_targets(self, painting: torch.Tensor) -> dict[str, torch.Tensor]:
        return grams(self.vgg(painting.to(DEVICE), list(STYLE_WEIGHTS)), list(STYLE_WEIGHTS))

    @torch.no_grad()
    def measure(self, image: torch.Tensor) -> Measured:
        feats = self.vgg(image.to(DEVICE).clamp(0, 1))
        return Measured(grams(feats, list(STYLE_WEIGHTS)), feats[CONTENT_LAYER])

    @torch.no_grad()
    def style_any_phase(
        self, image: torch.Tensor, targets: dict[str, torch.Tensor], period: int = 4
    ) -> float:
        """Style loss averaged over the ``period`` x ``period`` crops that drop 0 to
        ``period - 1`` pixels on each side, one batch.

        A fast network paints on its 4-pixel stride grid and was trained with that grid
        on VGG's pooling grid, so a crop of the very same picture by one pixel measures
        5-10 % worse. Pictures whose grids sit at different offsets (video aligned to the
        moving content) are only comparable with this average."""
        h, w = image.shape[-2:]
        m = period - 1
        crops = [
            image[..., dy : h - m + dy, dx : w - m + dx]
            for dy in range(period)
            for dx in range(period)
        ]
        measured = self.measure(torch.cat(crops))
        return float(style_loss(measured.grams, targets, STYLE_WEIGHTS))

    def photos(self, images: dict[str, torch.Tensor]) -> Photos:
        return Photos(images, {name: self.measure(image) for name, image in images.items()})

    @staticmethod
    def score(image: Measured, photo: Measured, targets: dict[str, torch.Tensor]) -> Score:
        """Style loss against ``targets`` (in total and by layer), content loss against
        ``photo``."""
        return Score(
            style=float(style_loss(image.grams, targets, STYLE_WEIGHTS)),
            content=float(content_loss(image.content, photo.content)),
            layers={
                name: float(style_layer_loss(image.grams[name], targets[name]))
                for name in STYLE_WEIGHTS
            },
        )


def contact_sheet(
    rows: list[list[torch.Tensor]], labels: list[str], path: Path, tile: int = 200
) -> None:
    """Rows of stylised photos under a line of style names, saved as JPEG/PNG."""
    head = 18
    sheet = Image.new("RGB", (tile * len(labels), head + tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * tile + 4, 3), label, fill="black")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            small = fit(image, tile).clamp(0, 1)
            h, w = small.shape[-2:]
            pil = Image.frombytes("RGB", (w, h), to_pixels(small, None, 3, "u8"))
            sheet.paste(pil, (c * tile + (tile - w) // 2, head + r * tile + (tile - h) // 2))
    sheet.save(path, quality=85, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--models", type=Path, default=bundled_styles_dir())
    parser.add_argument("--content-dir", type=Path, default=SHARED / "content")
    parser.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    parser.add_argument("--vgg-weights", type=Path, default=VGG16_WEIGHTS)
    parser.add_argument("--gatys-images", type=int, default=None, help="default: all")
    parser.add_argument("--gatys-iterations", type=int, default=300)
    parser.add_argument(
        "--gatys-size",
        type=int,
        default=None,
        help="long side for the Gatys comparison (default: --size); the "
        "model is scored again at this size for the model / Gatys ratio",
    )
    parser.add_argument(
        "--gatys-cache",
        type=Path,
        default=None,
        help="folder to keep Gatys results in, so reruns skip them",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--contact-sheet", type=Path)
    parser.add_argument(
        "--reference",
        nargs="*",
        default=[],
        metavar="MODEL=PAINTING",
        help="also score other models (e.g. a PyTorch fast_neural_style "
        ".pth) against a painting in --styles-dir, as a baseline",
    )
    parser.add_argument(
        "--sheet-photos",
        nargs="*",
        default=["chelsea", "kodim08", "astronaut", "kodim05"],
        help="photo names (without suffix) for the contact sheet rows",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    photos = sorted(p for p in args.content_dir.iterdir() if p.suffix in (".png", ".jpg"))
    models = sorted(args.models.glob("*.safetensors"))
    if not photos or not models:
        raise SystemExit(f"need photos in {args.content_dir} and models in {args.models}")
    n_gatys = len(photos) if args.gatys_images is None else args.gatys_images
    gatys_size = args.gatys_size or args.size
    judge = Judge(args.vgg_weights)
    content = judge.photos({p.stem: fit(load_image(p)[0], args.size) for p in photos})
    gatys_photos = judge.photos(
        {name: fit(image, gatys_size) for name, image in list(content.images.items())[:n_gatys]}
    )
    sheet_names = [n for n in args.sheet_photos if n in content.images] or [photos[0].stem]
    sheet_rows: dict[str, list[torch.Tensor]] = {n: [] for n in sheet_names}
    labels: list[str] = []
    layer_rows: list[str] = []

    print(
        f"{len(photos)} photos at {args.size} px; Gatys on the first {n_gatys} at "
        f"{gatys_size} px ({args.gatys_iterations} L-BFGS steps at half, then full size)\n"
    )
    photo_grid = sum(grid_score(image) for image in content.images.values()) / len(photos)
    print(
        "| style | model style | Gatys style | photo style | model / Gatys | "
        "photo / model | photo / Gatys | model content | Gatys content | grid score | "
        "model ms/img | ok |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |")
    entries = [(path, None) for path in models]
    entries += [
        (Path(model), args.styles_dir / painting)
        for model, _, painting in (r.partition("=") for r in args.reference)
    ]
    for model_path, painting_file in entries:
        model = load_style_model(model_path)
        is_reference = painting_file is not None
        label = f"{model_path.name} (reference)" if is_reference else model.meta["name"]
        row, layer_row, styled = score_model(
            args, judge, model, painting_file, content, gatys_photos
        )
        print(f"| {label} | {row}", flush=True)
        layer_rows.append(f"| {label} | {layer_row}")
        if not is_reference:
            labels.append(label)
            for name, rows in sheet_rows.items():
                rows.append(styled[name])
    print(f"| photos | | | | | | | | | {photo_grid:,.0f} | | |")
    layers = list(STYLE_WEIGHTS)
    print(
        f"\nBy layer, on the Gatys photos at {gatys_size} px: photo / model, then photo / "
        "Gatys (each layer's mean style term; the totals above weigh the layers equally).\n"
    )
    print(
        "| style | "
        + " | ".join(f"photo / model {n}" for n in layers)
        + " | "
        + " | ".join(f"photo / Gatys {n}" for n in layers)
        + " |"
    )
    print("| --- |" + " ---: |" * (2 * len(layers)))
    print("\n".join(layer_rows))
    print(
        "\nmodel / Gatys compares the model's mean style loss on the Gatys photos with "
        f"Gatys's (target <= {MAX_STYLE_RATIO_TO_GATYS:g}); photo / model compares the "
        f"photo's with the model's over all photos (target >= {MIN_GAIN_OVER_PHOTO:g})."
    )
    if args.contact_sheet:
        contact_sheet(list(sheet_rows.values()), labels, args.contact_sheet)
        print(f"contact sheet: {args.contact_sheet}")


def score_model(
    args: argparse.Namespace,
    judge: Judge,
    model: StyleModel,
    painting_file: Path | None,
    content: Photos,
    gatys_photos: Photos,
) -> tuple[str, str, dict[str, torch.Tensor]]:
    """The model's table row and by-layer row (after the label) and its stylised photos
    by name. The painting is the one the model was trained on unless ``painting_file`` is
    given; ``gatys_photos`` are the ones Gatys is compared on, at the Gatys size."""
    training = json.loads(model.meta.get("training", "{}"))
    painting_file = painting_file or args.styles_dir / training["style_images"][0]
    style_size = int(training.get("style_size", args.size))
    targets = judge.style_targets(fit(load_image(painting_file)[0], style_size))
    ours, photo, gatys, ours_sub, photo_sub = Scores(), Scores(), Scores(), Scores(), Scores()
    styled: dict[str, torch.Tensor] = {}
    grids: list[float] = []
    elapsed = 0.0
    for name, image in content.images.items():
        start = time.perf_counter()
        styled[name] = stylize_fast(model, image)
        elapsed += time.perf_counter() - start
        own = content.measured[name]
        ours.add(judge.score(judge.measure(styled[name]), own, targets))
        photo.add(judge.score(own, own, targets))
        grids.append(grid_score(styled[name]))
    for name, image in gatys_photos.images.items():
        own = gatys_photos.measured[name]
        photo_sub.add(judge.score(own, own, targets))
        ours_sub.add(judge.score(judge.measure(stylize_fast(model, image)), own, targets))
        result = gatys_result(args, painting_file, style_size, name, image)
        gatys.add(judge.score(judge.measure(result), own, targets))
    mean = Scores.mean
    ratio_gatys = mean(ours_sub.style) / mean(gatys.style)
    gain = mean(photo.style) / mean(ours.style)
    ok = ratio_gatys <= MAX_STYLE_RATIO_TO_GATYS and gain >= MIN_GAIN_OVER_PHOTO
    row = (
        f"{mean(ours.style):.4f} | {mean(gatys.style):.4f} | {mean(photo.style):.3f} | "
        f"{ratio_gatys:.2f} | {gain:.1f} | {mean(photo_sub.style) / mean(gatys.style):.1f} | "
        f"{mean(ours.content):.3f} | "
        f"{mean(gatys.content):.3f} | {mean(grids):,.0f} | "
        f"{1000 * elapsed / len(styled):.0f} | "
        f"{'yes' if ok else 'no'} |"
    )
    layer_row = (
        " | ".join(
            f"{mean(photo_scores.layers[n]) / mean(scores.layers[n]):.1f}"
            for photo_scores, scores in ((photo_sub, ours_sub), (photo_sub, gatys))
            for n in STYLE_WEIGHTS
        )
        + " |"
    )
    return row, layer_row, styled


_GATYS_VGG: dict[Path, VGGFeatures] = {}


def gatys_result(
    args: argparse.Namespace,
    painting_file: Path,
    style_size: int,
    photo_name: str,
    photo: torch.Tensor,
) -> torch.Tensor:
    """Our engine's Gatys result with the painting at the model's training size (the same
    brushwork size in pixels as the model's); cached in ``--gatys-cache`` when given."""
    size = max(photo.shape[-2:])
    cached = None
    if args.gatys_cache is not None:
        key = f"{painting_file.stem}-{style_size}-{photo_name}-{size}-{args.gatys_iterations}.png"
        cached = args.gatys_cache / key
        if cached.exists():
            return load_image(cached)[0]
    painting = load_image(painting_file)[0]
    params = GatysParams(
        iterations=args.gatys_iterations, scales=(0.5, 1.0), style_scale=style_size / size
    )
    result = stylize_gatys(photo, [(painting, 1.0)], gatys_vgg(args), params)
    if cached is not None:
        args.gatys_cache.mkdir(parents=True, exist_ok=True)
        save_image(cached, result)
    return result


def gatys_vgg(args: argparse.Namespace) -> VGGFeatures:
    """The engine's own Gatys network (content relu4_2, style relu1_1..relu5_1)."""
    if args.vgg_weights not in _GATYS_VGG:
        params = GatysParams()
        _GATYS_VGG[args.vgg_weights] = VGGFeatures(
            "vgg16", [params.content_layer, *params.style_weights], args.vgg_weights
        ).to(DEVICE)
    return _GATYS_VGG[args.vgg_weights]


if __name__ == "__main__":
    main()
