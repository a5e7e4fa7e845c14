"""Distil the bundled styles into lite models (``nst_core.distill``), one style after another.

Teachers are ``--teachers/NAME.safetensors`` (default: the bundled models); students go to
``--out-dir/NAME.lite.safetensors``. Pixel distillation alone blurs the brushwork (the
mean of what the teacher might paint), so ``--perceptual-steps N`` then trains the
student on for N steps with the bundled recipe's perceptual loss (``nst_core.train``: the
painting's Gram matrices, content, total variation and the grid term). Crops, teacher
results and checkpoints are kept in ``--work-dir``, so an interrupted run resumes where
it stopped. Judge the results with ``compare_models.py --tolerance 1.1`` and copy into
``nst_core/bundled_styles/`` only those it passes.

    python bench/distill_bundled.py --out-dir ~/.cache/nst-train/lite/models
    python bench/distill_bundled.py --only starry-night --steps 300     # a quick trial

A student that misses the bar on one side (style loss too high, content loss with room
to spare) trains on from its file with a scaled style weight:

    python bench/distill_bundled.py --only wheat-field --perceptual-steps 200 \
        --init-student OUT/wheat-field.lite.safetensors --style-weight-scale 1.5 --out-dir OUT2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from train_bundled import STYLES, Style

from nst_core.distill import LITE_BLOCKS, LITE_WIDTHS, DistillConfig, distill
from nst_core.paths import bundled_styles_dir
from nst_core.progress import Progress
from nst_core.train import TrainConfig, train
from nst_core.transformer_net import load_style_model

from machine import SHARED, VGG16_WEIGHTS, describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="style names (default: all)")
    parser.add_argument("--teachers", type=Path, default=bundled_styles_dir())
    parser.add_argument(
        "--out-dir", type=Path, default=Path.home() / ".cache" / "nst-train" / "lite" / "models"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path.home() / ".cache" / "nst-train" / "lite"
    )
    parser.add_argument("--data-dir", type=Path, default=SHARED / "train")
    parser.add_argument("--widths", type=int, nargs=3, default=list(LITE_WIDTHS))
    parser.add_argument("--blocks", type=int, default=LITE_BLOCKS)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crops", type=int, default=384)
    parser.add_argument("--crop-size", type=int, default=192)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--tv-weight", type=float, default=0.0)
    parser.add_argument(
        "--no-notch", action="store_true", help="keep the teacher's 4-pixel grid in the targets"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--perceptual-steps", type=int, default=0)
    parser.add_argument("--perceptual-image-size", type=int, default=256)
    parser.add_argument("--perceptual-batch-size", type=int, default=2)
    parser.add_argument("--perceptual-lr", type=float, default=1e-3)
    parser.add_argument("--grid-weight", type=float, default=500.0)
    parser.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    parser.add_argument(
        "--init-student",
        type=Path,
        help="skip pixel distillation: the perceptual steps start from this lite model",
    )
    parser.add_argument("--style-weight-scale", type=float, default=1.0)
    args = parser.parse_args()
    if args.init_student and not args.perceptual_steps:
        parser.error("--init-student needs --perceptual-steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe(), flush=True)
    styles = [s for s in STYLES if not args.only or s.name in args.only]
    for style in styles:
        name = style.name
        final = args.out_dir / f"{name}.lite.safetensors"
        config = DistillConfig(
            teacher=args.teachers / f"{name}.safetensors",
            data_dir=args.data_dir,
            output=final if not args.perceptual_steps else args.work_dir / name / final.name,
            work_dir=args.work_dir / name,
            widths=tuple(args.widths),
            blocks=args.blocks,
            crops=args.crops,
            crop_size=args.crop_size,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            tv_weight=args.tv_weight,
            notch_grid=not args.no_notch,
            seed=args.seed,
        )
        start = last = time.perf_counter()

        def report(p: Progress, name: str = name) -> None:
            nonlocal last
            if p.step % args.log_every == 0 or p.step == p.total:
                now = time.perf_counter()
                terms = " ".join(f"{k}={v:.5f}" for k, v in p.losses.items())
                print(
                    f"{name} {p.step}/{p.total} {terms} {(now - last) / args.log_every:.2f}s/step",
                    flush=True,
                )
                last = now

        if args.init_student:
            path = args.init_student
        else:
            path = distill(config, progress=report)
            print(f"{name}: wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
        if args.perceptual_steps:
            path = train(perceptual_config(style, path, final, args), progress=report)
            print(f"{name}: wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)


def perceptual_config(
    style: Style, student: Path, output: Path, args: argparse.Namespace
) -> TrainConfig:
    """The recipe's perceptual loss, from the distilled student, keeping its lite metadata."""
    meta = load_style_model(student).meta
    run = "perceptual" if not args.init_student else f"perceptual-from-{args.init_student.stem}"
    if args.style_weight_scale != 1.0:
        run += f"-style-x{args.style_weight_scale:g}"
    return style.config(
        args.styles_dir,
        data_dir=args.data_dir,
        output=output,
        steps=args.perceptual_steps,
        batch_size=args.perceptual_batch_size,
        image_size=args.perceptual_image_size,
        lr=args.perceptual_lr,
        grid_weight=args.grid_weight,
        style_weight=style.style_weight * args.style_weight_scale,
        vgg_weights=VGG16_WEIGHTS,
        seed=args.seed,
        checkpoint_dir=args.work_dir / style.name / run,
        checkpoint_every=25,
        init_model=student,
        extra_meta={"variant": "lite", "teacher": meta["teacher"]},
    )


if __name__ == "__main__":
    main()
