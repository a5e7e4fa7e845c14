"""What the daemon costs and buys, measured against in-process runs in the same session.

1. Added latency of a round trip through the daemon over calling the same job function
   in-process, for a fast-style job on a 1024x1024 RGBA picture (target: at most 15 ms
   on loopback). Median of N runs each, interleaved; also the median of (round trip -
   the daemon's own job time), which isolates transport and queueing.
2. Throughput of ``nst batch`` over 100 pictures of 512x512 against an in-process loop
   doing the same reads, jobs and atomic writes.
3. Daemon start-to-ready time: ``nst daemon start`` until it answers.

Pictures are generated here; the style is the bundled ``starry-night`` (every fast
style costs the same per pixel), so no reference data is needed.

    python bench/bench_daemon.py [--runs 7] [--batch 100] [--starts 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine

STYLE = "starry-night"  # bundled: the same network as any other fast style
NST = [sys.executable, "-m", "nst_daemon"]


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def random_picture(width: int, height: int, channels: int, seed: int):
    """A smooth random picture (not white noise: PNG sizes like a photo's)."""
    import torch
    import torch.nn.functional as F

    from nst_client.protocol import Image

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, height // 16 + 1, width // 16 + 1, generator=g)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    detail = torch.rand(1, channels, height, width, generator=g) * 0.1
    pixels = ((smooth + detail).clamp(0, 1) * 255).round().to(torch.uint8)
    data = pixels[0].permute(1, 2, 0).contiguous().numpy().tobytes()
    return Image(width, height, channels, data)


def run_nst(*args: str | Path, env: dict[str, str]) -> float:
    """Run ``nst ARGS``; returns the wall time in seconds (raises on failure)."""
    started = time.perf_counter()
    done = subprocess.run([*NST, *map(str, args)], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"nst {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return elapsed


def bench_start(env: dict[str, str], starts: int) -> list[float]:
    times = []
    for _ in range(starts):
        times.append(run_nst("daemon", "start", env=env))
        run_nst("daemon", "stop", env=env)
    return times


def bench_latency(endpoint: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    """(in-process times, daemon round trips, round trip - daemon's job time) in seconds."""
    from nst_client.client import Client
    from nst_client.protocol import StylizeRequest
    from nst_daemon.execute import execute_stylize
    from nst_daemon.models import Models

    image = random_picture(1024, 1024, 4, seed=1)
    models = Models()

    def in_process() -> float:
        started = time.perf_counter()
        execute_stylize(StylizeRequest(image, STYLE), models)
        return time.perf_counter() - started

    local, remote, overhead = [], [], []
    with Client(endpoint, autostart=False, timeout=120) as client:

        def round_trip() -> tuple[float, float]:
            started = time.perf_counter()
            result = client.stylize(image, style=STYLE)
            elapsed = time.perf_counter() - started
            return elapsed, elapsed - result.timings["total_s"]

        in_process()  # warm up both: model loads, allocator, first-call costs
        round_trip()
        for _ in range(runs):
            local.append(in_process())
            elapsed, extra = round_trip()
            remote.append(elapsed)
            overhead.append(extra)
    return local, remote, overhead


def bench_batch(env: dict[str, str], endpoint: str, count: int, work: Path) -> tuple[float, float]:
    """(nst batch seconds, in-process loop seconds) over ``count`` 512x512 pictures."""
    from nst_client.protocol import StylizeRequest
    from nst_daemon.execute import execute_stylize
    from nst_daemon.imagefile import read_image, write_image
    from nst_daemon.models import Models

    src = work / "in"
    src.mkdir()
    for i in range(count):
        write_image(src / f"p{i:03d}.png", random_picture(512, 512, 3, seed=100 + i))
    with_daemon = run_nst("batch", src, "-o", work / "out-daemon", "--style", STYLE, env=env)

    out = work / "out-local"
    out.mkdir()
    models = Models()
    started = time.perf_counter()
    for path in sorted(src.iterdir()):
        result = execute_stylize(StylizeRequest(read_image(path), STYLE), models)
        write_image(out / path.name, result["image"])
    in_process = time.perf_counter() - started
    return with_daemon, in_process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="latency runs (median)")
    parser.add_argument("--batch", type=int, default=100, help="pictures in the batch test")
    parser.add_argument("--starts", type=int, default=3, help="daemon starts to time")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the daemon

    with tempfile.TemporaryDirectory(prefix="nst-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        os.environ["NST_HOME"] = str(home)  # this process's in-process runs too
        endpoint = free_endpoint()
        env = dict(os.environ, NST_HOME=str(home), NST_ENDPOINT=endpoint)
        print(f"machine: {machine.describe()}")
        print(f"style:   {STYLE} (bundled)")

        starts = bench_start(env, args.starts)
        print(
            f"\ndaemon start-to-ready (`nst daemon start`, {len(starts)} starts): "
            f"median {statistics.median(starts):.2f} s (min {min(starts):.2f}, "
            f"max {max(starts):.2f})"
        )

        run_nst("daemon", "start", env=env)
        try:
            local, remote, overhead = bench_latency(endpoint, args.runs)
            ml, mr, mo = (statistics.median(x) * 1000 for x in (local, remote, overhead))
            print(f"\nfast job, 1024x1024 RGBA, median of {args.runs}:")
            print(f"  in-process        {ml:8.1f} ms")
            print(f"  through daemon    {mr:8.1f} ms")
            print(f"  difference        {mr - ml:8.1f} ms   (target <= 15 ms)")
            print(f"  round trip - job  {mo:8.1f} ms   (transport + queueing, per run)")

            with_daemon, in_process = bench_batch(env, endpoint, args.batch, work)
            n = args.batch
            print(f"\nbatch, {n} pictures 512x512 RGB (PNG in, PNG out):")
            print(f"  nst batch         {with_daemon:8.1f} s  {n / with_daemon:6.2f} img/s")
            print(f"  in-process loop   {in_process:8.1f} s  {n / in_process:6.2f} img/s")
            print(f"  ratio             {in_process / with_daemon:8.2f}   (nst batch vs loop)")
        finally:
            run_nst("daemon", "stop", env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
