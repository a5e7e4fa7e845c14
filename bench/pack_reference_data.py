"""Pack a compact copy of the reference data for a machine it cannot be copied to whole.

Writes, under DEST, the photo and painting the speed benchmarks use, and on request the
quality report's photos (512 px JPEG) and paintings, and a downscaled subset of the
training photos. The VGG16 weights are not packed: the checkout bundles them
(``nst_core/bundled_vgg/``). The benchmarks read it with ``NST_SHARED=DEST``;
``bench/gpu_figures.sh`` runs them all in one go.

    python bench/pack_reference_data.py .reference-data --quality --train-photos 600
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from machine import SHARED

BENCH_FILES = ["content/kodim08.png", "styles/starry_night.jpg"]
TRAIN_SHORT_SIDE = 320  # training crops scale the short side to 256-384 px anyway


def shrink(
    src: Path,
    dest: Path,
    long_side: int | None = None,
    short_side: int | None = None,
    quality: int = 90,
) -> None:
    """Save ``src`` as a JPEG at most ``long_side`` / ``short_side`` pixels."""
    with Image.open(src) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = min(1.0, (long_side or 10**9) / max(w, h), (short_side or 10**9) / min(w, h))
        if scale < 1.0:
            image = image.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        image.save(dest.with_suffix(".jpg"), quality=quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument(
        "--quality", action="store_true", help="also the quality report's photos and paintings"
    )
    parser.add_argument(
        "--train-photos",
        type=int,
        default=0,
        help=f"this many training photos, short side {TRAIN_SHORT_SIDE} px",
    )
    args = parser.parse_args()
    if not all((SHARED / name).is_file() for name in BENCH_FILES):
        raise SystemExit(f"no reference data at {SHARED} (set NST_SHARED)")

    for name in BENCH_FILES:
        (args.dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / name, args.dest / name)
    if args.quality:
        for photo in sorted((SHARED / "content").iterdir()):
            if not (args.dest / "content" / photo.name).exists():  # the bench photo stays
                shrink(photo, args.dest / "content" / photo.name, long_side=512, quality=95)
        shutil.copytree(SHARED / "styles", args.dest / "styles", dirs_exist_ok=True)
    photos = sorted((SHARED / "train").iterdir())
    step = max(1, len(photos) // max(1, args.train_photos))
    for photo in photos[::step][: args.train_photos]:
        shrink(photo, args.dest / "train" / photo.name, short_side=TRAIN_SHORT_SIDE, quality=80)
    total = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
