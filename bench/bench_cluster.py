"""What Ray costs and buys for ``nst batch``: the same pictures through the local batch and
through ``nst batch --ray``, on this machine, then on a simulated multi-node cluster.

1. Local batch: ``run_tasks`` with ``LocalRunner`` (what ``nst batch --local`` runs), one
   process with torch's default threads and with one thread (an actor's configuration),
   over N generated pictures of SIZE x SIZE.
2. Ray on this machine: ``ray.init(num_cpus=CORES)``, one actor per CPU (one torch thread
   each), the same pictures. Reported: Ray's start, the job's wall time (actors start, load
   the model, then stylise), and the steady rate between the first and the last result.
3. Multi-node simulation: ``ray.cluster_utils.Cluster`` with a head that runs no actors and
   NODES raylets of one CPU each on this machine. First a no-op style (the picture is read,
   copied and written: no network) to measure Ray's scheduling overhead per picture against
   the same no-op in the local loop; then the real style, showing how the pictures spread
   over the nodes. The raylets share this machine's cores, so this shows distribution and
   overhead, not a speed-up.

Pictures are generated here; the style is the bundled ``starry-night``.

    python bench/bench_cluster.py [--pictures 48] [--size 256] [--nodes 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import machine

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

STYLE = "starry-night"


def make_pictures(folder: Path, count: int, size: int) -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        g = torch.Generator().manual_seed(i)
        coarse = torch.rand(1, 3, size // 16 + 1, size // 16 + 1, generator=g)
        smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        noisy = (smooth + 0.03 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
        pixels = (noisy[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")


class CopyJob:
    def __init__(self, image):
        self.image = image

    def result(self, on_progress=None):
        return self.image

    def close(self) -> None:
        pass


class CopyRunner:
    """A no-op style: the picture comes back unchanged (reads and writes stay real)."""

    def __init__(self, spec=None) -> None:
        pass

    def start(self, image):
        return CopyJob(image)


def local_batch(source: Path, out: Path, runner) -> float:
    from nst_daemon.batch import plan_batch, run_tasks

    out.mkdir()
    todo, _ = plan_batch(source, out)
    started = time.perf_counter()
    for _ in run_tasks(todo, runner):
        pass
    return time.perf_counter() - started


def ray_batch(source: Path, out: Path, spec, runner_factory=None, actors=None) -> dict:
    """One ``nst batch --ray`` job; ``steady`` is the rate after the first results arrived
    (the actors' start and model load excluded): rows that came after the first arrival,
    over the time from it to the last."""
    from nst_daemon import cluster

    job = cluster.make_plan(str(source), str(out))
    arrivals: list[float] = []
    started = time.perf_counter()
    report = cluster.run(
        job,
        spec,
        runner_factory=runner_factory,
        actors=actors,
        on_row=lambda row: arrivals.append(time.perf_counter()),
    )
    wall = time.perf_counter() - started
    later = [t for t in arrivals if t > arrivals[0]]
    steady = len(later) / (later[-1] - arrivals[0]) if later else 0.0
    return {
        "wall": wall,
        "steady": steady,
        "first": arrivals[0] - started,
        "report": report,
        "count": len(arrivals),
    }


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load ?"


def spread(report) -> str:
    nodes = Counter(report.nodes)
    return ", ".join(f"node {i + 1}: {n}" for i, (_, n) in enumerate(sorted(nodes.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--overhead-pictures", type=int, default=200)
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from nst_daemon.batch import LocalRunner, StyleSpec

    print(machine.describe(), flush=True)
    print(
        f"ray {ray.__version__}; {args.pictures} pictures of {args.size}x{args.size}, "
        f"style {STYLE}\n"
    )
    spec = StyleSpec(STYLE)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="nst-bench-cluster-") as tmp:
        root = Path(tmp)
        os.environ["NST_HOME"] = str(root / "home")
        make_pictures(root / "in", args.pictures, args.size)
        make_pictures(root / "few", args.overhead_pictures, 32)

        # 1. the local batch, with torch's threads and with one (an actor's configuration)
        import torch

        runner = LocalRunner(spec)
        threads = torch.get_num_threads()
        for n in (threads, 1):
            torch.set_num_threads(n)
            local_batch(root / "in", root / f"warm-{n}", runner)  # model loaded, memory warm
            local = local_batch(root / "in", root / f"local-{n}", runner)
            print(
                f"local batch (1 process, {n} thread(s)): {args.pictures / local:.2f} img/s "
                f"({local:.1f} s, {load()})",
                flush=True,
            )
        torch.set_num_threads(threads)
        noop_local = local_batch(root / "few", root / "noop-local", CopyRunner())
        noop_ms = 1000 * noop_local / args.overhead_pictures
        print(
            f"local batch, no-op style, {args.overhead_pictures} pictures of 32x32: "
            f"{noop_ms:.2f} ms per picture",
            flush=True,
        )

        # 2. Ray on this machine
        started = time.perf_counter()
        ray.init(
            num_cpus=cores,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=200 * 1024 * 1024,
        )
        print(
            f"\nray.init (local, {cores} CPUs): {time.perf_counter() - started:.1f} s", flush=True
        )
        try:
            for attempt in ("", " again (a new actor pool)"):
                result = ray_batch(root / "in", root / f"ray{attempt[:6].strip()}", spec)
                report = result["report"]
                print(
                    f"ray{attempt}, {report.actors} actors x 1 thread, batch size "
                    f"{report.batch_size}: job {args.pictures / result['wall']:.2f} img/s "
                    f"({result['wall']:.1f} s, first results after {result['first']:.1f} s), "
                    f"steady {result['steady']:.2f} img/s ({load()})",
                    flush=True,
                )
        finally:
            ray.shutdown()

        # 3. several raylets on this machine
        started = time.perf_counter()
        sim = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "object_store_memory": 100 * 1024 * 1024,
            },
        )
        for _ in range(args.nodes):
            sim.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        ray.init(address=sim.address, log_to_driver=False, logging_level="WARNING")
        sim.wait_for_nodes()
        print(
            f"\nsimulated cluster: head (no CPUs) + {args.nodes} nodes of 1 CPU, up in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        try:
            result = ray_batch(root / "few", root / "noop-1", spec, CopyRunner, actors=1)
            per = 1000 / result["steady"]
            print(
                f"no-op style, 1 actor, {args.overhead_pictures} pictures of 32x32: steady "
                f"{per:.1f} ms per picture, {per - noop_ms:+.1f} ms against the local loop "
                f"(Ray's scheduling and result rows per picture)",
                flush=True,
            )
            result = ray_batch(root / "few", root / "noop-n", spec, CopyRunner)
            print(
                f"no-op style, {result['report'].actors} actors: steady "
                f"{1000 / result['steady']:.1f} ms per picture; spread: "
                f"{spread(result['report'])}",
                flush=True,
            )
            result = ray_batch(root / "in", root / "sim", spec)
            report = result["report"]
            print(
                f"real style, {report.actors} actors: job {args.pictures / result['wall']:.2f} "
                f"img/s, steady {result['steady']:.2f} img/s; spread: {spread(report)} "
                f"({load()})",
                flush=True,
            )
        finally:
            ray.shutdown()
            sim.shutdown()


if __name__ == "__main__":
    main()
