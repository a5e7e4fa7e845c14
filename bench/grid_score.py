"""Grid-artifact score: how far the transformation network's 4-pixel grid stands out.

The Johnson network's decoder upsamples twice by 2, so a poorly trained one lays a
period-2/period-4 pattern over the picture: sharp peaks in the luminance power spectrum at
(±¼, ±¼), (±½, 0), (0, ±½), (±½, ±½), (±¼, 0) and (0, ±¼) cycles per pixel. The score is
the mean power at those frequencies over the median power of all frequencies above 0.3
cycles per pixel (the picture's own fine texture). Photos score below ~1,000.

    python bench/grid_score.py --photos 8          # bundled styles, udnie.pth, photos
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

GRID_FREQUENCIES = (
    (0.25, 0.25),
    (0.25, -0.25),
    (0.5, 0.0),
    (0.0, 0.5),
    (0.5, 0.5),
    (0.25, 0.0),
    (0.0, 0.25),
)  # (fy, fx); the spectrum's symmetry adds ±
HIGH_FREQUENCY = 0.3


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of ``[1, 3, H, W]`` in 0..1, as ``[H, W]``."""
    r, g, b = rgb[0].float()
    return 0.299 * r + 0.587 * g + 0.114 * b


def grid_score(rgb: torch.Tensor) -> float:
    """The score of one picture ``[1, 3, H, W]`` (cropped to sides divisible by 4)."""
    y = luminance(rgb)
    h, w = (s - s % 4 for s in y.shape)
    y = y[:h, :w] - y[:h, :w].mean()
    power = torch.fft.fft2(y.double()).abs().square()
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    high = power[torch.maximum(fy.abs(), fx.abs()).expand(h, w) > HIGH_FREQUENCY]
    peaks = [
        power[round(a * h) % h, round(b * w) % w]
        for fa, fb in GRID_FREQUENCIES
        for a, b in ((fa, fb), (-fa, -fb))
    ]
    return float(torch.stack(peaks).mean() / high.median().clamp_min(1e-30))


def main() -> None:
    from nst_core.fast import stylize_fast
    from nst_core.images import load_image
    from nst_core.paths import bundled_styles_dir
    from nst_core.pillow_modes import is_picture_file
    from nst_core.transformer_net import load_style_model

    from machine import SHARED, describe
    from quality_report import fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--photos", type=int, default=8, help="first N photos of --content-dir")
    parser.add_argument("--content-dir", type=Path, default=SHARED / "content")
    parser.add_argument(
        "--models",
        nargs="*",
        type=Path,
        default=[
            *sorted(bundled_styles_dir().glob("*.safetensors")),
            SHARED / "models" / "pytorch-examples" / "udnie.pth",
        ],
    )
    args = parser.parse_args()
    print(describe())
    photos = sorted(p for p in args.content_dir.iterdir() if is_picture_file(p))
    images = [fit(load_image(p)[0], args.size) for p in photos[: args.photos]]
    print(f"{len(images)} photos at {args.size} px\n\n| model | grid score |\n| --- | ---: |")
    photo_score = sum(grid_score(i) for i in images) / len(images)
    for path in args.models:
        model = load_style_model(path)
        score = sum(grid_score(stylize_fast(model, i)) for i in images) / len(images)
        print(f"| {path.name} | {score:,.0f} |", flush=True)
    print(f"| photos | {photo_score:,.0f} |")


if __name__ == "__main__":
    main()
