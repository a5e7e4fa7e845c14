"""Gatys speed: our coarse-to-fine run vs a plain single-scale run of the same losses.

CPU (always): a plain fp32 implementation (whole VGG16 ``features``, one L-BFGS
optimisation of ``--steps`` iterations at full size from the content) gives an output
image; we measure how long ``stylize_gatys`` takes until its output image is as good,
from the start (style targets and coarse scales included). Both outputs are judged by
the same yardstick: the plain fp32 loss of the clamped image (what a user gets), so
reduced precision in our run (``nst_core.precision``) cannot flatter it; that judging is
not counted in our time. With CUDA also: 512x512 x 500 L-BFGS steps wall time, and peak
memory of a 2048x2048 multi-scale run.

    .venv/bin/python bench/bench_gatys.py [--size 256] [--steps 100] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace

import torch

from nst_core.errors import Cancelled
from nst_core.gatys import CONTENT_WEIGHT, STYLE_WEIGHT, GatysParams, stylize_gatys
from nst_core.images import load_image, resize
from nst_core.losses import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_WEIGHTS,
    content_loss,
    grams,
    style_loss,
)
from nst_core.precision import loss_network_dtype
from nst_core.progress import CancelToken, Progress
from nst_core.vgg import VGGFeatures, layer_names, make_features
from nst_core.weights import load_features_state, resolve_weights

import machine
from machine import SHARED


class PlainLoss:
    """The textbook loss: full VGG16 ``features`` in fp32, Gatys' content + style terms."""

    def __init__(self, content, style, state, device):
        self.net = make_features("vgg16").to(device).eval().requires_grad_(False)
        self.net.load_state_dict(state)
        self.names = layer_names("vgg16")
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
        with torch.no_grad():
            self.p = self.features(content)[GATYS_CONTENT_LAYER]
            self.a = grams(self.features(style), GATYS_STYLE_WEIGHTS)

    def features(self, x):
        out, h = {}, (x - self.mean) / self.std
        for name, module in zip(self.names, self.net, strict=True):
            h = module(h)
            out[name] = h
        return out

    def __call__(self, x):
        f = self.features(x)
        return CONTENT_WEIGHT * content_loss(f[GATYS_CONTENT_LAYER], self.p) + STYLE_WEIGHT * (
            style_loss(grams(f, GATYS_STYLE_WEIGHTS), self.a, GATYS_STYLE_WEIGHTS)
        )

    def of_output(self, x) -> float:
        """The loss of what a user gets: the image clamped to [0, 1]."""
        with torch.no_grad():
            return self(x.clamp(0, 1)).item()


def plain_gatys(content, style, state, steps, device, clamp=False):
    """One L-BFGS run of ``steps`` iterations at full size from the content; with
    ``clamp``, pixels are clamped to [0, 1] before every evaluation (as PyTorch's neural
    style tutorial does).

    Returns (output's loss, seconds, [(seconds, optimised loss) per evaluation], yardstick).
    """
    t0 = time.perf_counter()
    loss = PlainLoss(content, style, state, device)
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x], max_iter=steps, history_size=50, tolerance_grad=0, tolerance_change=0
    )
    trace = []

    def closure():
        if clamp:
            with torch.no_grad():
                x.clamp_(0, 1)
        opt.zero_grad()
        value = loss(x)
        value.backward()
        trace.append((time.perf_counter() - t0, value.item()))
        return value

    opt.step(closure)
    sync(device)
    seconds = time.perf_counter() - t0
    return loss.of_output(x.detach()), seconds, trace, loss


def ours_to_loss(content, style, vgg, params, target_loss, yardstick):
    """Seconds until our full-size output's yardstick loss first reaches ``target_loss``
    (None if never), not counting the yardstick's own evaluations."""
    token = CancelToken()
    full = f"gatys {content.shape[-1]}x{content.shape[-2]}"
    hit: list[float] = []
    best = [float("inf")]
    trace: list[tuple[float, float]] = []
    judging = [0.0]
    t0 = time.perf_counter()

    def progress(p: Progress) -> None:
        if p.stage != full or p.preview is None:
            return
        started = time.perf_counter()
        value = yardstick.of_output(p.preview.to(content.device))
        now = started - t0 - judging[0]
        judging[0] += time.perf_counter() - started
        trace.append((now, value))
        best[0] = min(best[0], value)
        if value <= target_loss and not hit:
            hit.append(now)
            token.cancel()

    params = replace(params, preview_every=1, preview_size=max(content.shape[-2:]))
    with contextlib.suppress(Cancelled):
        stylize_gatys(content, [(style, 1.0)], vgg, params, progress=progress, cancel=token)
    return (hit[0] if hit else None), time.perf_counter() - t0 - judging[0], best[0], trace


def show(name: str, trace: list[tuple[float, float]]) -> None:
    every = max(1, len(trace) // 10)
    points = [f"{t:.0f}s:{v:.3f}" for t, v in trace[every - 1 :: every]]
    print(f"  {name} full-size loss by time: {' '.join(points)}")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_pair(size: int, device):
    content, _ = load_image(SHARED / "content" / "kodim08.png")
    style, _ = load_image(SHARED / "styles" / "starry_night.jpg")
    content = resize(content, (size, size)).to(device)
    h, w = style.shape[-2:]  # long side = content size: what style_scale 1.0 asks for
    style = resize(style, (round(h * size / max(h, w)), round(w * size / max(h, w)))).to(device)
    return content, style


def vgg16_state() -> dict[str, torch.Tensor]:
    """The reference VGG16 weights, else the installed ones."""
    weights = machine.VGG16_WEIGHTS
    return load_features_state(weights if weights.exists() else resolve_weights("vgg16"))[1]


def cpu_bench(args) -> None:
    device = torch.device("cpu")
    content, style = load_pair(args.size, device)
    state = vgg16_state()
    dtype = loss_network_dtype(device)
    print(f"ours    : VGG in {'bfloat16 (native on this CPU)' if dtype else 'float32'}")
    vgg = VGGFeatures("vgg16", [GATYS_CONTENT_LAYER, *GATYS_STYLE_WEIGHTS], weights=state)

    for name, clamp in (("plain", False), ("plain + clamp", True)):
        base_loss, base_s, trace, yardstick = plain_gatys(
            content, style, state, args.steps, device, clamp
        )
        print(
            f"{name:13s}: {args.steps} L-BFGS steps at {args.size}px in {base_s:.1f} s "
            f"({base_s / args.steps:.2f} s/step); output loss {base_loss:.4f} "
            f"(optimised loss {trace[-1][1]:.4f})"
        )
        params = GatysParams(  # up to twice the plain run's steps at full size
            iterations=2 * args.steps,
            scales=tuple(args.scales),
            coarse_fraction=args.coarse_fraction / 2,
        )
        hit_s, ran_s, best, ours_trace = ours_to_loss(
            content, style, vgg, params, base_loss, yardstick
        )
        show(f"{name} (optimised)", trace)
        show("ours (output)", ours_trace)
        if hit_s is None:
            print(f"ours    : never reached {base_loss:.4f} (best {best:.4f}) in {ran_s:.1f} s")
            continue
        print(
            f"ours    : output loss {base_loss:.4f} reached after {hit_s:.1f} s "
            f"(scales {args.scales}, coarse_fraction {args.coarse_fraction})"
        )
        print(f"speed-up over {name}: {base_s / hit_s:.2f}x time to the same output loss")


def cuda_bench() -> None:
    device = torch.device("cuda")
    layers = [GATYS_CONTENT_LAYER, *GATYS_STYLE_WEIGHTS]
    vgg = VGGFeatures("vgg16", layers, weights=vgg16_state()).to(device)
    content, style = load_pair(512, device)
    params = GatysParams(iterations=500, scales=(1.0,))
    sync(device)
    t0 = time.perf_counter()
    stylize_gatys(content, [(style, 1.0)], vgg, params)
    sync(device)
    print(f"cuda    : 512x512 x 500 L-BFGS steps: {time.perf_counter() - t0:.1f} s")

    content, style = load_pair(2048, device)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    stylize_gatys(content, [(style, 1.0)], vgg, GatysParams.preset("draft"))
    sync(device)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"cuda    : 2048x2048 draft multi-scale: {time.perf_counter() - t0:.1f} s, "
        f"peak memory {peak:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--coarse-fraction", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine : {machine.describe()}")
    cpu_bench(args)
    if torch.cuda.is_available():
        cuda_bench()
    else:
        print("cuda    : not available, GPU figures skipped")


if __name__ == "__main__":
    main()
