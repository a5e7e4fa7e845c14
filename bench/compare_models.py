"""Candidate models against the shipped ones: grid score, style and content loss, a verdict.

For every candidate model file, the shipped bundled model of the same style is scored
beside it on the quality report's yardstick (``quality_report.py``: style loss against
the painting at the model's training size, content loss relu3_3 against the photo, means
over the photos of ``--content-dir`` at ``--size``) and on the grid score
(``grid_score.py``, the first ``--grid-photos`` photos), with the reference model's grid
score as the bar. Verdict ``yes`` when the candidate's grid score is at most the
reference's and its style and content losses are at most the shipped model's times
``--tolerance`` (1.0: no worse; 1.1 for the lite models: within 10 %).

    python bench/compare_models.py ~/.cache/nst-train/v2/models/*.safetensors
    python bench/compare_models.py --tolerance 1.1 nst_core/bundled_styles/*.lite.safetensors
    python bench/compare_models.py --sheet /tmp/sheet.jpg CANDIDATES...  # shipped row, then each
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nst_core.fast import stylize_fast
from nst_core.images import load_image
from nst_core.paths import bundled_styles_dir
from nst_core.transformer_net import StyleModel, load_style_model

from grid_score import grid_score
from machine import SHARED, VGG16_WEIGHTS, describe
from quality_report import Judge, Photos, contact_sheet, fit


def style_of(model: StyleModel, path: Path) -> str:
    return model.meta.get("name", path.name.split(".")[0])


def measure(
    judge: Judge, model: StyleModel, photos: Photos, grid_photos: int, styles_dir: Path
) -> tuple[float, float, float, list[torch.Tensor]]:
    """Mean style loss, mean content loss, mean grid score, and the stylised photos."""
    training = json.loads(model.meta.get("training", "{}"))
    painting = styles_dir / training["style_images"][0]
    targets = judge.style_targets(fit(load_image(painting)[0], int(training["style_size"])))
    style, content, grids, styled = [], [], [], []
    for k, (name, image) in enumerate(photos.images.items()):
        out = stylize_fast(model, image)
        score = judge.score(judge.measure(out), photos.measured[name], targets)
        style.append(score.style)
        content.append(score.content)
        if k < grid_photos:
            grids.append(grid_score(out))
        styled.append(out)
    return (sum(style) / len(style), sum(content) / len(content), sum(grids) / len(grids), styled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument(
        "--shipped",
        type=Path,
        default=bundled_styles_dir(),
        help="folder of the models to compare with (NAME.safetensors)",
    )
    parser.add_argument(
        "--reference", type=Path, default=SHARED / "models" / "pytorch-examples" / "udnie.pth"
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--photos", type=int, default=None, help="default: all")
    parser.add_argument("--grid-photos", type=int, default=4)
    parser.add_argument("--tolerance", type=float, default=1.0)
    parser.add_argument("--content-dir", type=Path, default=SHARED / "content")
    parser.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    parser.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also write a contact sheet: shipped and candidate per style",
    )
    parser.add_argument(
        "--sheet-photos", nargs="*", default=["chelsea", "kodim08", "astronaut", "kodim05"]
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe())
    files = sorted(p for p in args.content_dir.iterdir() if p.suffix in (".png", ".jpg"))
    files = files[: args.photos] if args.photos else files
    judge = Judge(VGG16_WEIGHTS)
    photos = judge.photos({p.stem: fit(load_image(p)[0], args.size) for p in files})
    reference = load_style_model(args.reference)
    ref_grid = sum(
        grid_score(stylize_fast(reference, image))
        for image in list(photos.images.values())[: args.grid_photos]
    )
    ref_grid /= min(args.grid_photos, len(photos.images))
    print(
        f"{len(files)} photos at {args.size} px, grid score on the first {args.grid_photos}; "
        f"{args.reference.name} grid score {ref_grid:,.0f}; tolerance {args.tolerance:g}\n"
    )
    print("| style | model | grid score | style loss | content loss | ok |")
    print("| --- | --- | ---: | ---: | ---: | :-: |")
    shipped_cache: dict[str, tuple[float, float, float, list[torch.Tensor]]] = {}
    rows: list[list[torch.Tensor]] = []
    labels: list[str] = []
    names = list(photos.images)
    for path in args.candidates:
        model = load_style_model(path)
        style = style_of(model, path)
        if style not in shipped_cache:
            shipped = load_style_model(args.shipped / f"{style}.safetensors")
            shipped_cache[style] = measure(
                judge, shipped, photos, args.grid_photos, args.styles_dir
            )
            s_style, s_content, s_grid, s_out = shipped_cache[style]
            print(
                f"| {style} | shipped | {s_grid:,.0f} | {s_style:.4f} | {s_content:.4f} | |",
                flush=True,
            )
            labels.append(f"{style} shipped")
            rows.append(s_out)
        s_style, s_content, _, _ = shipped_cache[style]
        c_style, c_content, c_grid, c_out = measure(
            judge, model, photos, args.grid_photos, args.styles_dir
        )
        ok = (
            c_grid <= ref_grid
            and c_style <= s_style * args.tolerance
            and c_content <= s_content * args.tolerance
        )
        print(
            f"| {style} | {path} | {c_grid:,.0f} | {c_style:.4f} | {c_content:.4f} | "
            f"{'yes' if ok else 'no'} |",
            flush=True,
        )
        labels.append(path.name.removesuffix(".safetensors")[:30])
        rows.append(c_out)
    if args.sheet:
        wanted = [names.index(n) for n in args.sheet_photos if n in names] or [0]
        contact_sheet([[column[i] for column in rows] for i in wanted], labels, args.sheet)
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
