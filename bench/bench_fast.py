"""Fast-method speed: a plain fp32 PyTorch run of TransformerNet vs ``stylize_fast``.

Prints the machine, the median of several runs of each at 512x512 (interleaved, so that
load from other processes hits both alike), the ratio and the largest difference between
the two results. On CPU, both are timed again with freed memory kept for reuse, as the
daemon runs (``nst_core.memory``). With CUDA, also 1024x1024 and a tiled 7680x4320
(time, peak memory).

    python bench/bench_fast.py [--runs 7] [--threads N] [--model PATH] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from nst_core.fast import runner_for, stylize_fast
from nst_core.memory import keep_freed_memory
from nst_core.paths import bundled_styles_dir
from nst_core.transformer_net import TransformerNet, load_style_model

import machine

BUNDLED = bundled_styles_dir() / "starry-night.safetensors"


def timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure(candidates: dict, runs: int, sync) -> dict[str, list[float]]:
    """Seconds of each candidate, ``runs`` times, interleaved so load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():
        fn()  # warm-up
    for _ in range(runs):
        for name, fn in candidates.items():
            times[name].append(timed(fn, sync))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", type=Path, default=BUNDLED)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile(TransformerNet) (static shape)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net = load_style_model(args.model).net
    print(f"machine: {machine.describe()}")
    print(f"model: {args.model.name}")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        plain_net = TransformerNet().to(device)
        plain_net.load_state_dict(net.state_dict())
        plain_net.eval()
        image = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
        on_device = image.to(device)
        runner_for(net, device)  # prepared once, as the daemon keeps it

        def plain(plain_net=plain_net, on_device=on_device):
            with torch.inference_mode():
                return (plain_net(on_device * 255.0) / 255.0).clamp(0, 1)

        def ours(image=image, device=device):
            return stylize_fast(net, image, device=device)

        candidates = {"plain fp32": plain, "stylize_fast": ours}
        if args.compile:
            compiled = torch.compile(plain_net)

            def with_compile(compiled=compiled, on_device=on_device):
                with torch.inference_mode():
                    return compiled(on_device * 255.0)

            start = time.perf_counter()
            with_compile()
            print(f"[{device}] torch.compile warm-up: {time.perf_counter() - start:.1f} s")
            candidates["torch.compile"] = with_compile
        times = measure(candidates, args.runs, sync)
        if device == "cpu" and keep_freed_memory():
            # The daemon keeps freed blocks for reuse (nst_core.memory); time both that way too.
            kept = measure({"plain fp32": plain, "stylize_fast": ours}, args.runs, sync)
            times.update({f"{name} (kept memory)": values for name, values in kept.items()})
        medians = {name: statistics.median(values) for name, values in times.items()}
        difference = (plain().cpu() - ours()).abs().max().item()
        for name, value in medians.items():
            print(
                f"[{device}] 512x512 {name:27s} median {value:.3f} s "
                f"(min {min(times[name]):.3f}, max {max(times[name]):.3f})"
            )
        ours_best = min(v for k, v in medians.items() if k.startswith("stylize_fast"))
        print(
            f"[{device}] 512x512 speed-up plain fp32 (default allocator) / ours: "
            f"{medians['plain fp32'] / ours_best:.2f}x; "
            f"max |difference| {difference:.2e} (of 1.0)"
        )
        if device == "cuda":
            cuda_sizes(net, args.runs, sync)


def cuda_sizes(net: TransformerNet, runs: int, sync) -> None:
    """Median time and peak memory at 1024x1024 and, tiled, 7680x4320, picture on the
    CPU before and after (as the daemon gets it) and, for 1024x1024, already on the GPU."""
    for height, width, tile in ((1024, 1024, None), (4320, 7680, 2048)):
        big = torch.rand(1, 3, height, width)
        candidates = {
            "from CPU": lambda big=big, tile=tile: stylize_fast(
                net, big, device="cuda", tile_size=tile
            )
        }
        if tile is None:
            on_gpu = big.cuda()
            candidates["on GPU"] = lambda x=on_gpu: stylize_fast(net, x, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        times = measure(candidates, runs, sync)
        peak = torch.cuda.max_memory_allocated() / 2**20
        for name, values in times.items():
            print(
                f"[cuda] {width}x{height} tiles={tile} {name:8s}: median "
                f"{statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}), "
                f"peak GPU memory {peak:.0f} MiB"
            )


if __name__ == "__main__":
    main()
