"""Train the bundled fast-style models: the recipe, with every per-style setting.

One base model is trained on The Starry Night; every other style is fine-tuned from it
(our own base, so no weights of unknown provenance end up in the bundle). Models are
written as fp16 safetensors into ``nst_core/bundled_styles/``.

    python bench/train_bundled.py                   # all styles, settings below
    python bench/train_bundled.py --only the-scream --finetune-steps 2000 --batch-size 8
    python bench/train_bundled.py --base-steps 10000 --finetune-steps 4000 \\
        --image-size 256 --batch-size 8             # the full recipe, on a GPU

Prints one line per ``--log-every`` steps with the loss terms and seconds per step.
Checkpoints go to ``--work-dir`` so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from nst_core.paths import bundled_styles_dir
from nst_core.progress import Progress
from nst_core.train import TrainConfig, train

from machine import SHARED, VGG16_WEIGHTS

BASE = "starry-night"


@dataclass(frozen=True)
class Style:
    name: str
    file: str  # in ../shared/styles/
    title: str
    artist: str
    year: str
    style_weight: float = 9.0  # strong: the painting's palette and strokes, content readable
    style_size: int = 512  # long side of the painting for its Gram matrices
    tv_weight: float = 1e-2

    def config(self, styles_dir: Path, **settings: Any) -> TrainConfig:
        """The training of this style: its painting, names and weights; ``settings`` give
        the run's own (steps, batch, output, ...) and may scale the weights."""
        fields: dict[str, Any] = dict(
            style_images=[styles_dir / self.file],
            name=self.name,
            title=self.title,
            artist=self.artist,
            year=self.year,
            licence="public domain (painting); model trained by the project",
            style_weight=self.style_weight,
            tv_weight=self.tv_weight,
            style_size=self.style_size,
        )
        return TrainConfig(**(fields | settings))


STYLES = [
    Style(BASE, "starry_night.jpg", "The Starry Night", "Vincent van Gogh", "1889"),
    Style(
        "the-scream", "the_scream.jpg", "The Scream", "Edvard Munch", "1893", style_weight=6.0
    ),  # at 9 its bands wash faces out
    Style(
        "great-wave",
        "great_wave_hokusai.jpg",
        "The Great Wave off Kanagawa",
        "Katsushika Hokusai",
        "c. 1831",
    ),
    Style(
        "composition-vii",
        "composition_vii_kandinsky.jpg",
        "Composition VII",
        "Wassily Kandinsky",
        "1913",
    ),
    Style(
        "shipwreck",
        "shipwreck_minotaur_turner.jpg",
        "The Shipwreck of the Minotaur",
        "J. M. W. Turner",
        "c. 1810",
    ),
    Style(
        "udnie",
        "udnie_picabia.jpg",
        "Udnie (Young American Girl, The Dance)",
        "Francis Picabia",
        "1913",
    ),
    Style(
        "woman-with-hat", "woman_with_hat_matisse.jpg", "Woman with a Hat", "Henri Matisse", "1905"
    ),
    Style(
        "wheat-field",
        "vangogh_wheat_field_cypresses.jpg",
        "Wheat Field with Cypresses",
        "Vincent van Gogh",
        "1889",
    ),
]


def config_for(style: Style, args: argparse.Namespace) -> TrainConfig:
    is_base = style.name == BASE
    return style.config(
        args.styles_dir,
        data_dir=args.data_dir,
        output=args.out_dir / f"{style.name}.safetensors",
        steps=args.base_steps if is_base else args.finetune_steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=style.style_weight * args.style_weight_scale,
        tv_weight=style.tv_weight * args.tv_weight_scale,
        grid_weight=args.grid_weight,
        anchor_weight=args.anchor_weight,
        vgg_weights=args.vgg_weights,
        seed=args.seed,
        checkpoint_dir=args.work_dir,
        checkpoint_every=50,
        preview_every=args.preview_every,
        init_model=init_model_for(style, args),
    )


def init_model_for(style: Style, args: argparse.Namespace) -> Path | None:
    """Where a run starts: ``--continue-from`` (the style's own earlier model), else the
    base model for the fine-tunes and nothing (a fresh network) for the base."""
    if args.continue_from is not None:
        return args.continue_from / f"{style.name}.safetensors"
    return None if style.name == BASE else args.out_dir / f"{BASE}.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="style names (default: all)")
    parser.add_argument("--base-steps", type=int, default=500)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (1 is fastest on a busy 2-core machine)",
    )
    parser.add_argument("--preview-every", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    parser.add_argument("--data-dir", type=Path, default=SHARED / "train")
    parser.add_argument("--vgg-weights", type=Path, default=VGG16_WEIGHTS)
    parser.add_argument("--out-dir", type=Path, default=bundled_styles_dir())
    parser.add_argument(
        "--continue-from",
        type=Path,
        default=None,
        help="folder of earlier models: train each style on from its own",
    )
    parser.add_argument(
        "--style-weight-scale",
        type=float,
        default=1.0,
        help="multiply every style's style weight by this",
    )
    parser.add_argument("--content-weight", type=float, default=1.0)
    parser.add_argument(
        "--tv-weight-scale",
        type=float,
        default=1.0,
        help="multiply every style's total-variation weight by this",
    )
    parser.add_argument(
        "--grid-weight",
        type=float,
        default=0.0,
        help="weight of the 4-pixel grid term (nst_core.losses.grid_power)",
    )
    parser.add_argument(
        "--anchor-weight",
        type=float,
        default=0.0,
        help="stay near the starting model's output, its grid taken out",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/nst-train-bundled"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    selected = [s for s in STYLES if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in STYLES}
    if unknown:
        parser.error(f"unknown style(s) {sorted(unknown)}; known: {[s.name for s in STYLES]}")
    base_file = args.out_dir / f"{BASE}.safetensors"
    if (
        any(s.name != BASE for s in selected)
        and BASE not in [s.name for s in selected]
        and not base_file.exists()
        and args.continue_from is None
    ):
        parser.error(f"the fine-tunes start from {base_file}; train {BASE} first")

    for style in selected:
        config = config_for(style, args)
        start = last = time.perf_counter()

        def report(p: Progress, name: str = style.name) -> None:
            nonlocal last
            if p.step % args.log_every == 0 or p.step == p.total:
                now = time.perf_counter()
                terms = " ".join(f"{k}={v:.4f}" for k, v in p.losses.items())
                per_step = (now - last) / args.log_every
                print(f"{name} {p.step}/{p.total} {terms} {per_step:.2f}s/step", flush=True)
                last = now
            if p.preview is not None:
                previews = args.work_dir / "previews"
                previews.mkdir(parents=True, exist_ok=True)
                save_image(p.preview, previews / f"{name}-{p.step:06d}.png")

        path = train(config, progress=report)
        print(
            f"{style.name}: wrote {path} in {time.perf_counter() - start:.0f} s "
            f"(style_weight={config.style_weight}, style_size={style.style_size}, "
            f"steps={config.steps}, batch={config.batch_size}, crop={config.image_size})",
            flush=True,
        )


if __name__ == "__main__":
    main()
