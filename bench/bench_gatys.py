"""Gatys (Paint Like) speed and quality: today's presets against the new ones, in units.

The work unit is the time of one plain fp32 VGG16 forward + input-gradient backward
through relu5_1 on a 512x512 image, measured in the same run, before and after every
timed run (a busy machine slows both alike: compare units, not seconds). Every result is
judged by one fixed yardstick: the normalised content + style losses of the final image
(clamped, as a user gets it) in fp32 through the whole VGG16, with the style at the
content's size. ``TODAY`` is a frozen copy of the presets' schedules before the
coarse-to-fine rework, so old and new are printed side by side from one run.

    .venv/bin/python bench/bench_gatys.py [--size 512] [--quality draft balanced]
    .venv/bin/python bench/bench_gatys.py --levers          # each lever alone, draft
    .venv/bin/python bench/bench_gatys.py --sheet docs/paint-like-sheet.jpg --size 256
    .venv/bin/python bench/bench_gatys.py --vs-plain --size 256 --steps 100

``--vs-plain``: our run against a plain single-scale fp32 L-BFGS run of the same losses
(time until our output is as good). With CUDA also: 512x512 x 500 L-BFGS steps wall
time, and peak memory of a 2048x2048 multi-scale run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from nst_core.errors import Cancelled
from nst_core.gatys import (
    CONTENT_WEIGHT,
    QUALITY_PRESETS,
    STYLE_WEIGHT,
    GatysParams,
    stylize_gatys,
)
from nst_core.images import load_image, resize
from nst_core.losses import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_WEIGHTS,
    content_loss,
    grams,
    style_loss,
)
from nst_core.precision import loss_network_dtype, loss_network_precision
from nst_core.progress import CancelToken, Progress
from nst_core.vgg import VGGFeatures, layer_names, make_features
from nst_core.weights import load_features_state, resolve_weights

import machine
from machine import SHARED

#: today's presets, frozen: the schedules before the coarse-to-fine rework (the other
#: settings at their defaults then: content start with restored detail, all five style
#: layers at every scale, L-BFGS without line search, history 50)
TODAY: dict[str, dict[str, object]] = {
    "draft": {"iterations": 100, "scales": (0.5, 1.0), "coarse_fraction": 1.0},
    "balanced": {"iterations": 300, "scales": (0.25, 0.5, 1.0), "coarse_fraction": 1.0},
    "high": {"iterations": 800, "scales": (0.25, 0.5, 1.0), "coarse_fraction": 1.0},
}


def _todays_features(vgg, x, layers=None, *, enabled=True):
    """Today's ``loss_network_features``, frozen: the picture in NCHW, features as float32."""
    with loss_network_precision(vgg.mean.device, enabled):
        feats = vgg(x, layers)
    return {name: f.float() for name, f in feats.items()}


def _todays_grams(features, layers):
    """Today's Gram matrices, frozen: autograd's backward (two products and a sum)."""
    out = {}
    for name in layers:
        b, c, h, w = features[name].shape
        flat = features[name].reshape(b, c, h * w)
        out[name] = torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)
    return out


@contextlib.contextmanager
def todays_loss_path():
    """Runs ``stylize_gatys`` with today's loss arithmetic (before channels-last bf16 and
    the one-product Gram backward), so that today's and the new presets compare in one
    run."""
    import nst_core.gatys as gatys_module

    saved = gatys_module.loss_network_features, gatys_module.grams
    gatys_module.loss_network_features, gatys_module.grams = _todays_features, _todays_grams
    try:
        yield
    finally:
        gatys_module.loss_network_features, gatys_module.grams = saved


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
    hit: list[float] = []
    best = [float("inf")]
    trace: list[tuple[float, float]] = []
    judging = [0.0]
    t0 = time.perf_counter()

    def progress(p: Progress) -> None:
        if p.preview is None or p.preview.shape[-2:] != content.shape[-2:]:
            return  # not full size yet
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


def load_pair(size: int, device, photo: str = "kodim08.png", painting: str = "starry_night.jpg"):
    content, _ = load_image(SHARED / "content" / photo)
    style, _ = load_image(SHARED / "styles" / painting)
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


# ----------------------------------------------------------------- presets, in work units


class WorkUnit:
    """One plain fp32 VGG16 forward + input-gradient backward through relu5_1, 512x512."""

    def __init__(self, state: dict[str, torch.Tensor], device) -> None:
        self.net = make_features("vgg16")[: layer_names("vgg16").index("relu5_1") + 1]
        self.net.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < 26})
        self.net = self.net.to(device).eval().requires_grad_(False)
        self.device = device
        self.seconds: list[float] = []

    def measure(self, repeats: int = 3) -> tuple[float, float]:
        """Median wall and CPU seconds of ``repeats`` timings (also kept in ``seconds``)."""
        wall, cpu = [], []
        gen = torch.Generator().manual_seed(0)
        for _ in range(repeats):
            x = torch.rand(1, 3, 512, 512, generator=gen).to(self.device).requires_grad_(True)
            t0, c0 = time.perf_counter(), time.process_time()
            self.net(x).sum().backward()
            sync(self.device)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        median = sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]
        self.seconds.append(median[0])
        return median


def judge(yardstick: PlainLoss, image: torch.Tensor) -> dict[str, float]:
    """The fixed yardstick: fp32 content, style and total loss of the clamped image."""
    with torch.no_grad():
        f = yardstick.features(image.clamp(0, 1).to(yardstick.p.device))
        lc = content_loss(f[GATYS_CONTENT_LAYER], yardstick.p).item()
        ls = style_loss(grams(f, GATYS_STYLE_WEIGHTS), yardstick.a, GATYS_STYLE_WEIGHTS).item()
    return {"content": lc, "style": ls, "total": CONTENT_WEIGHT * lc + STYLE_WEIGHT * ls}


def eta_errors(events: list[tuple[float, int, int, float | None]], seconds: float):
    """Worst relative error of the time left from 20 % of the run on (until the last 2 %):
    the engine's own estimate, and elapsed / steps done * steps left (the old one)."""
    worst_engine = worst_naive = 0.0
    for t, step, total, eta in events:
        left = seconds - t
        if t < 0.2 * seconds or left < 0.02 * seconds or step == 0:
            continue
        naive = t / step * (total - step)
        worst_naive = max(worst_naive, abs(naive - left) / left)
        if eta is not None:
            worst_engine = max(worst_engine, abs(eta - left) / left)
    return worst_engine, worst_naive


def timed_run(content, style, vgg, params, unit: WorkUnit, yardstick: PlainLoss):
    """Runs ``params`` once, timed, between two unit measurements; judged afterwards.

    Units by wall time, and by this process's CPU time: on a shared machine the share of
    the CPU changes from minute to minute, its CPU time much less (with one thread)."""
    before = unit.measure()
    events: list[tuple[float, int, int, float | None]] = []
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(p: Progress) -> None:
        events.append((time.perf_counter() - t0, p.step, p.total, p.eta_s))

    out = stylize_gatys(content, [(style, 1.0)], vgg, params, progress=progress)
    sync(content.device)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = unit.measure()
    u, u_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    engine, naive = eta_errors(events, seconds)
    steps = events[-1][2] if events else 0
    return {
        "seconds": seconds,
        "unit_s": u,
        "units": seconds / u,
        "cpu_s": cpu,
        "unit_cpu_s": u_cpu,
        "cpu_units": cpu / u_cpu,
        "steps": steps,
        **judge(yardstick, out),
        "eta_err": engine,
        "naive_eta_err": naive,
    }, out


def describe_run(label: str, r: dict[str, float]) -> str:
    return (
        f"{label:28s} {r['steps']:4d} steps {r['seconds']:7.1f} s = {r['units']:6.1f} units "
        f"(unit {r['unit_s']:.2f} s; by CPU time {r['cpu_units']:6.1f} units)  loss "
        f"{r['total']:.4f} (content {r['content']:.4f}, style {r['style']:.4f})  ETA error "
        f"from 20 %: {100 * r['eta_err']:.0f} % (elapsed/steps: "
        f"{100 * r['naive_eta_err']:.0f} %)"
    )


def setup(size: int, photo: str = "kodim08.png", painting: str = "starry_night.jpg"):
    device = torch.device("cpu")
    content, style = load_pair(size, device, photo, painting)
    state = vgg16_state()
    vgg = VGGFeatures("vgg16", [GATYS_CONTENT_LAYER, *GATYS_STYLE_WEIGHTS], weights=state)
    return content, style, state, vgg, PlainLoss(content, style, state, device)


def save_result(out_dir: Path | None, name: str, image: torch.Tensor, row: dict) -> None:
    if out_dir is None:
        return
    from nst_core.images import save_image

    out_dir.mkdir(parents=True, exist_ok=True)
    save_image(out_dir / f"{name}.png", image)
    with open(out_dir / "results.jsonl", "a") as f:
        f.write(json.dumps({"name": name, **row}) + "\n")


def presets_bench(args) -> None:
    content, style, state, vgg, yardstick = setup(args.size)
    unit = WorkUnit(state, content.device)
    dtype = loss_network_dtype(content.device)
    print(
        f"ours    : VGG in {'bfloat16 (native on this CPU)' if dtype else 'float32'}; "
        f"{args.size}x{args.size} kodim08 + The Starry Night"
    )
    for quality in args.quality:
        results = {}
        for label, params in (
            ("today", GatysParams(**TODAY[quality])),
            ("new", GatysParams.preset(quality)),
        ):
            path = todays_loss_path() if label == "today" else contextlib.nullcontext()
            with path:
                row, out = timed_run(content, style, vgg, params, unit, yardstick)
            results[label] = row
            print(describe_run(f"{quality} ({label})", row), flush=True)
            save_result(args.out, f"{quality}-{label}", out, row)
        old, new = results["today"], results["new"]
        print(
            f"{quality}: {old['units']:.0f} -> {new['units']:.0f} units "
            f"({old['units'] / new['units']:.2f}x less work; by CPU time "
            f"{old['cpu_units']:.0f} -> {new['cpu_units']:.0f}, "
            f"{old['cpu_units'] / new['cpu_units']:.2f}x), loss {old['total']:.4f} -> "
            f"{new['total']:.4f} ({'no worse' if new['total'] <= old['total'] else 'WORSE'})",
            flush=True,
        )


def lever_variants(quality: str) -> list[tuple[str, GatysParams, str]]:
    """The new preset with each lever taken out in turn, and the optional ones put in:
    ``(label, params, name of a ``loss_path``)``."""
    new = GatysParams.preset(quality)
    return [
        ("today's preset", GatysParams(**TODAY[quality]), "today"),
        ("new preset", new, "new"),
        ("  with today's loss path", new, "today"),
        ("  picture in NCHW (one-product Gram kept)", new, "nchw"),
        ("  VGG in fp32 instead of bf16", new, "fp32"),
        ("  without style-coloured start", replace(new, start_colors=None), "new"),
        ("  + relu5_1 left out at full size", replace(new, fine_skip=("relu5_1",)), "new"),
        (
            "  + L-BFGS strong Wolfe line search",
            replace(new, lbfgs_line_search="strong_wolfe"),
            "new",
        ),
        ("  + L-BFGS history 100", replace(new, lbfgs_history=100), "new"),
    ]


@contextlib.contextmanager
def loss_path(name: str):
    """``today`` (see ``todays_loss_path``), ``new`` (the engine as it is), ``nchw`` (the
    new Gram matrices with the picture kept in NCHW) or ``fp32`` (VGG in float32)."""
    if name == "today":
        with todays_loss_path():
            yield
        return
    if name == "new":
        yield
        return
    import nst_core.gatys as gatys_module

    saved = gatys_module.loss_network_features

    def nchw(v, x, layers=None, **_):
        with loss_network_precision(v.mean.device):
            return v(x, layers)

    def fp32(v, x, layers=None, **_):
        return saved(v, x, layers, enabled=False)

    gatys_module.loss_network_features = nchw if name == "nchw" else fp32
    try:
        yield
    finally:
        gatys_module.loss_network_features = saved


def levers_bench(args) -> None:
    content, style, state, vgg, yardstick = setup(args.size)
    unit = WorkUnit(state, content.device)
    quality = args.quality[0]
    for label, params, path in lever_variants(quality):
        with loss_path(path):
            row, out = timed_run(content, style, vgg, params, unit, yardstick)
        print(describe_run(label, row), flush=True)
        save_result(args.out, f"lever-{quality}-{label.strip().replace(' ', '_')}", out, row)


SHEET_PHOTOS = ("kodim08.png", "chelsea.png")
SHEET_PAINTINGS = ("starry_night.jpg", "great_wave_hokusai.jpg")


def sheet_bench(args) -> None:
    """Today's draft and the new draft side by side for photos x paintings, one JPEG."""
    from PIL import Image, ImageDraw

    from nst_core.images import to_pixels

    cells: list[tuple[str, list[torch.Tensor]]] = []
    for photo in SHEET_PHOTOS:
        for painting in SHEET_PAINTINGS:
            content, style, state, vgg, yardstick = setup(args.size, photo, painting)
            row_images = []
            for label, params in (
                ("today", GatysParams(**TODAY[args.quality[0]])),
                ("new", GatysParams.preset(args.quality[0])),
            ):
                c0 = time.process_time()  # no work units here: the looks are the point
                with loss_path(label):
                    out = stylize_gatys(content, [(style, 1.0)], vgg, params)
                loss = judge(yardstick, out)
                print(
                    f"{photo} x {painting} {label}: {time.process_time() - c0:.0f} CPU s, "
                    f"loss {loss['total']:.4f} (content {loss['content']:.4f}, "
                    f"style {loss['style']:.4f})",
                    flush=True,
                )
                row_images.append(out)
            cells.append((f"{Path(photo).stem} x {Path(painting).stem}", row_images))
    size, pad, label_h = args.size, 4, 16
    sheet = Image.new(
        "RGB", (2 * size + 3 * pad, len(cells) * (size + label_h + pad) + 20), "white"
    )
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (pad, 4), f"left: today's {args.quality[0]}   right: new {args.quality[0]}", fill="black"
    )
    for r, (name, images) in enumerate(cells):
        y = 20 + r * (size + label_h + pad)
        draw.text((pad, y), name, fill="black")
        for c, image in enumerate(images):
            pixels = to_pixels(image, None, 3)
            h, w = image.shape[-2:]
            tile = Image.frombytes("RGB", (w, h), pixels)
            sheet.paste(tile, (pad + c * (size + pad), y + label_h))
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.sheet, quality=82)
    print(f"sheet   : {args.sheet}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--quality", nargs="+", default=["draft", "balanced"], choices=sorted(QUALITY_PRESETS)
    )
    parser.add_argument("--levers", action="store_true", help="each lever alone (first quality)")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet JPEG here")
    parser.add_argument("--out", type=Path, help="save the output pictures here")
    parser.add_argument("--vs-plain", action="store_true", help="against plain L-BFGS")
    parser.add_argument("--steps", type=int, default=100, help="--vs-plain: plain steps")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0], help="--vs-plain")
    parser.add_argument("--coarse-fraction", type=float, default=1.0, help="--vs-plain")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine : {machine.describe()}")
    if args.vs_plain:
        cpu_bench(args)
    elif args.levers:
        levers_bench(args)
    elif args.sheet:
        sheet_bench(args)
    else:
        presets_bench(args)
    if torch.cuda.is_available():
        cuda_bench()
    else:
        print("cuda    : not available, GPU figures skipped")


if __name__ == "__main__":
    main()
