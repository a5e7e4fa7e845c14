"""What Ray costs and buys for ``nst batch``: the same pictures through the local batch and
through ``nst batch --ray``, on this machine, then on a simulated multi-node cluster.

1. Local batch: ``run_tasks`` with ``LocalRunner`` (what ``nst batch --local`` runs), one
   process with torch's default threads, over N generated pictures of SIZE x SIZE.
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


def ray_batch(source: Path, out: Path, spec, runner_factory=None) -> dict:
    from nst_daemon import cluster

    job = cluster.make_plan(str(source), str(out))
    arrivals: list[float] = []
    started = time.perf_counter()
    report = cluster.run(
        job, spec, runner_factory=runner_factory,
        on_row=lambda row: arrivals.append(time.perf_counter()),
    )
    wall = time.perf_counter() - started
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return {
        "wall": wall, "steady": steady, "first": arrivals[0] - started, "report": report,
        "count": len(arrivals),
    }


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

    print(machine.describe())
    print(f"ray {ray.__version__}; {args.pictures} pictures of {args.size}x{args.size}, "
          f"style {STYLE}\n")
    spec = StyleSpec(STYLE)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="nst-bench-cluster-") as tmp:
        root = Path(tmp)
        os.environ["NST_HOME"] = str(root / "home")
        make_pictures(root / "in", args.pictures, args.size)
        make_pictures(root / "few", args.overhead_pictures, 32)

        # 1. the local batch
        runner = LocalRunner(spec)
        local_batch(root / "in", root / "warm", runner)  # model loaded, memory warm
        local = local_batch(root / "in", root / "local", runner)
        print(f"local batch (1 process, {machine_threads()} threads): "
              f"{args.pictures / local:.2f} img/s ({local:.1f} s)")
        noop_local = local_batch(root / "few", root / "noop-local", CopyRunner())
        print(f"local batch, no-op style, {args.overhead_pictures} pictures of 32x32: "
              f"{1000 * noop_local / args.overhead_pictures:.2f} ms per picture")

        # 2. Ray on this machine
        started = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 object_store_memory=200 * 1024 * 1024)
        print(f"\nray.init (local, {cores} CPUs): {time.perf_counter() - started:.1f} s")
        try:
            result = ray_batch(root / "in", root / "ray", spec)
            report = result["report"]
            print(f"ray, {report.actors} actors x 1 thread, batch size {report.batch_size}: "
                  f"job {args.pictures / result['wall']:.2f} img/s ({result['wall']:.1f} s, "
                  f"first result after {result['first']:.1f} s), steady "
                  f"{result['steady']:.2f} img/s")
            result = ray_batch(root / "in", root / "ray-again", spec)
            print(f"ray, again (a new actor pool): job {args.pictures / result['wall']:.2f} "
                  f"img/s, steady {result['steady']:.2f} img/s")
        finally:
            ray.shutdown()

        # 3. several raylets on this machine
        started = time.perf_counter()
        sim = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "include_dashboard": False,
                            "object_store_memory": 100 * 1024 * 1024},
        )
        for _ in range(args.nodes):
            sim.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        ray.init(address=sim.address, log_to_driver=False)
        sim.wait_for_nodes()
        print(f"\nsimulated cluster: head (no CPUs) + {args.nodes} nodes of 1 CPU, up in "
              f"{time.perf_counter() - started:.1f} s")
        try:
            result = ray_batch(root / "few", root / "noop-ray", spec, CopyRunner)
            per = 1000 * result["wall"] / args.overhead_pictures
            steady = 1000 / result["steady"] if result["steady"] else float("nan")
            print(f"no-op style, {args.overhead_pictures} pictures of 32x32: job {per:.1f} ms "
                  f"per picture (with the actors' start), steady {steady:.1f} ms per picture; "
                  f"over the local loop: {steady - 1000 * noop_local / args.overhead_pictures:.1f}"
                  f" ms per picture; spread: {spread(result['report'])}")
            result = ray_batch(root / "in", root / "sim", spec)
            report = result["report"]
            print(f"real style: job {args.pictures / result['wall']:.2f} img/s, steady "
                  f"{result['steady']:.2f} img/s, {report.actors} actors; spread: "
                  f"{spread(report)}")
        finally:
            ray.shutdown()
            sim.shutdown()


def machine_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
