"""Flicker of stylised video: plain per-frame fast stylisation vs ``nst_core.motion``.

Clips are generated from the test photos in ``../shared/content`` (``nst_core.motion_clips``:
a pan, a zoom, a static shot with sensor noise, a patch moving over a static noisy
background), so the true motion is known and nothing is downloaded. For each clip and
method: flicker (mean absolute temporal difference, 0-255 levels, where the input is
static; warped by the true motion where it moves), the style loss on the fixed yardstick
(normalised Gram loss of ``nst_core.losses`` on the VGG16 weights bundled in the package,
relu1_2..relu4_3, against the painting the model was trained on, as in
``quality_report.py``), and the time per frame. Targets: >= 3x less flicker than
per-frame at the same style loss, at <= 1.3x the per-frame time.

Times are measured frame by frame, alternating the two methods on the same frames, and
compared by medians, so that a busy machine slows both alike.

    python bench/bench_motion.py                     # starry-night, 4 photos, 256x192, 16 frames
    python bench/bench_motion.py --style udnie --size 512x384 --frames 24
    python bench/bench_motion.py --model new.safetensors --plain-model old.safetensors
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from nst_core.images import load_image, save_image
from nst_core.motion import PRESETS, VideoStylizer, describe, opencv_available
from nst_core.motion_clips import KINDS, flicker, make_clip
from nst_core.paths import bundled_styles_dir
from nst_core.transformer_net import load_style_model
from nst_core.weights import bundled_path

from machine import SHARED
from machine import describe as machine
from quality_report import Judge, fit

PHOTOS = ("kodim08", "kodim05", "kodim23", "astronaut", "kodim13", "kodim01")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="starry-night")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--size", default="256x192", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--consistency", default="full", choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", type=Path, help="model file (default: the bundled --style)")
    parser.add_argument(
        "--plain-model", type=Path, help="model of the per-frame column (default: --model)"
    )
    parser.add_argument("--save", type=Path, help="folder for the last frame of each clip")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(machine())
    model = load_style_model(args.model or bundled_styles_dir() / f"{args.style}.safetensors")
    plain_model = load_style_model(args.plain_model) if args.plain_model else model
    judge = Judge(bundled_path("vgg16"))
    training = json.loads(model.meta.get("training", "{}"))
    painting = SHARED / "styles" / training["style_images"][0]
    targets = judge.style_targets(fit(load_image(painting)[0], int(training["style_size"])))
    content = SHARED / "content"
    photos = [p for name in PHOTOS for p in content.glob(f"{name}.*")][: args.photos]
    if not photos:
        raise SystemExit(f"no test photos in {content}")
    ours_cfg = PRESETS[args.consistency]
    print(
        f"style {args.style}; clips {width}x{height}, {args.frames} frames, from "
        f"{', '.join(p.stem for p in photos)}; ours: {describe(ours_cfg)} "
        f"(OpenCV {'present' if opencv_available() else 'absent'})\n"
    )
    print(
        "| clip | per-frame flicker | ours | flicker ratio | per-frame style loss | ours | "
        "style ratio | per-frame ms | ours ms | time ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    totals: dict[str, dict[str, list[float]]] = {}
    costs = []
    for kind in args.kinds.split(","):
        row = totals.setdefault(kind, {k: [] for k in ("fp", "fo", "sp", "so", "tp", "to")})
        for photo in photos:
            clip = make_clip(load_image(photo)[0], kind, (height, width), args.frames)
            plain = VideoStylizer(plain_model, PRESETS["off"])
            ours = VideoStylizer(model, ours_cfg)
            out_p, out_o, t_p, t_o = [], [], [], []
            for frame in clip.frames:
                for stylizer, out, times in ((plain, out_p, t_p), (ours, out_o, t_o)):
                    start = time.perf_counter()
                    out.append(stylizer.step(frame))
                    times.append(time.perf_counter() - start)
            costs.append(ours.cost.per_frame())
            fp, fo = flicker(clip, out_p).overall, flicker(clip, out_o).overall
            sp = statistics.mean(judge.style_any_phase(f, targets) for f in out_p[1::3])
            so = statistics.mean(judge.style_any_phase(f, targets) for f in out_o[1::3])
            for key, value in zip(
                row,
                (fp, fo, sp, so, statistics.median(t_p[1:]), statistics.median(t_o[1:])),
                strict=True,
            ):
                row[key].append(value)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                for name, frames in (("input", clip.frames), ("plain", out_p), ("ours", out_o)):
                    save_image(args.save / f"{kind}-{photo.stem}-{name}.png", frames[-1])
        mean = {k: statistics.mean(v) for k, v in row.items()}
        print(
            f"| {kind} | {mean['fp']:.2f} | {mean['fo']:.2f} | {mean['fp'] / mean['fo']:.1f}x "
            f"| {mean['sp']:.4f} | {mean['so']:.4f} | {mean['so'] / mean['sp']:.3f} | "
            f"{1000 * mean['tp']:.0f} | {1000 * mean['to']:.0f} | "
            f"{mean['to'] / mean['tp']:.2f} |",
            flush=True,
        )
    every = {
        k: statistics.mean(v for row in totals.values() for v in row[k])
        for k in ("fp", "fo", "sp", "so", "tp", "to")
    }
    print(
        f"| all | {every['fp']:.2f} | {every['fo']:.2f} | {every['fp'] / every['fo']:.1f}x | "
        f"{every['sp']:.4f} | {every['so']:.4f} | {every['so'] / every['sp']:.3f} | "
        f"{1000 * every['tp']:.0f} | {1000 * every['to']:.0f} | "
        f"{every['to'] / every['tp']:.2f} |"
    )
    cost = {k: 1000 * statistics.mean(c[k] for c in costs) for k in costs[0]}
    print(
        f"\nours per frame: network {cost['network_s']:.0f} ms, flow {cost['flow_s']:.0f} ms, "
        f"carry {cost['carry_s']:.0f} ms. Targets: flicker ratio >= 3, style ratio ~1 "
        "(ours / per-frame; lower is better), time ratio <= 1.3."
    )


if __name__ == "__main__":
    main()
