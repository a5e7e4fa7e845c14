"""Soak: many fast jobs from concurrent clients against one daemon, memory over time.

Every result is checked against the pixels an in-process run of the same request gives
(single-threaded on both sides, so they are bit-identical), every client must get
exactly its own results, and the daemon's resident memory (``VmRSS``) and, on CUDA, the
device memory it reports in ``status`` are sampled all along. Prints a timeline and the
figures: jobs served, results wrong/lost/duplicated, throughput against an in-process
loop over the same requests, and memory growth after warm-up.

Styles are random fast-style networks (no reference data needed), images 16 to 96 px.

    python bench/soak.py [--jobs 1000] [--clients 8] [--in-flight 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from nst_client.protocol import Result
from nst_daemon.testing import (
    DaemonProcess,
    pipeline,
    reference_results,
    request_pool,
    save_random_style,
)

import machine

POOL = 48
SAMPLE_S = 0.5


def soak(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    pool = request_pool(POOL, styles=("rand", "other", "third"))
    started = time.perf_counter()
    expected = reference_results(home, pool)
    once = time.perf_counter() - started
    started = time.perf_counter()
    reference_results(home, pool + pool)  # the second pass runs warm: that is the baseline
    in_process_s = time.perf_counter() - started - once

    per_client = [
        args.jobs // args.clients + (i < args.jobs % args.clients) for i in range(args.clients)
    ]
    results: list[list[tuple[int, Result]]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    done = [0]
    daemon_args = ["--device", args.device] if args.device else []

    def client(i: int) -> None:
        picks = [(i * 13 + j * 7) % POOL for j in range(per_client[i])]
        try:
            with daemon.client(timeout=300) as c:
                for pick, result in pipeline(c, [(p, pool[p]) for p in picks], args.in_flight):
                    results[i].append((pick, result))
                    done[0] += 1
        except Exception as exc:
            errors.append(f"client {i}: {exc!r}")

    samples: list[tuple[float, int, int, dict]] = []
    with DaemonProcess(home, args=daemon_args) as daemon:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            memory = daemon.status().memory
            samples.append((time.perf_counter() - t0, done[0], daemon.rss_kb(), memory))
            time.sleep(SAMPLE_S)
        elapsed = time.perf_counter() - t0
        samples.append((elapsed, done[0], daemon.rss_kb(), daemon.status().memory))
        final = daemon.status()

    wrong = sum(
        r.image is None or r.image.data != expected[pick] for rs in results for pick, r in rs
    )
    job_ids = [r.job_id for rs in results for _, r in rs]
    received = len(job_ids)
    return {
        "samples": samples,
        "elapsed": elapsed,
        "received": received,
        "wrong": wrong,
        "lost": args.jobs - received,
        "duplicates": received - len(set(job_ids)),
        "short_clients": sum(len(r) != n for r, n in zip(results, per_client, strict=True)),
        "errors": errors,
        "idle_at_end": not final.running and not final.queue,
        "in_process_jobs_per_s": POOL / in_process_s,
        "device": final.device,
    }


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    samples = r["samples"]
    print(f"machine: {machine.describe()}; daemon device: {r['device']}")
    print(
        f"{args.jobs} jobs, {args.clients} clients, {args.in_flight} in flight each, "
        f"images 16-96 px, {POOL} distinct requests\n"
    )
    print(f"{'time s':>7} {'jobs':>6} {'RSS MiB':>8} {'GPU alloc MiB':>14} {'GPU resv MiB':>13}")
    step = max(1, len(samples) // 20)
    for t, jobs, rss, mem in samples[::step] + ([samples[-1]] if len(samples) % step else []):
        alloc = f"{mem['allocated'] / 2**20:.0f}" if mem else "-"
        resv = f"{mem['reserved'] / 2**20:.0f}" if mem else "-"
        print(f"{t:7.1f} {jobs:6d} {rss / 1024:8.1f} {alloc:>14} {resv:>13}")
    warm_from = min(args.jobs // 5, 200)
    warm = [(jobs, rss) for _, jobs, rss, _ in samples if jobs >= warm_from]
    daemon_rate = r["received"] / r["elapsed"]
    print(f"\njobs served        {r['received']} of {args.jobs}")
    print(f"results wrong      {r['wrong']}")
    print(f"results lost       {r['lost']}")
    print(f"duplicates         {r['duplicates']}")
    print(f"clients short      {r['short_clients']}")
    print(f"client errors      {len(r['errors'])} {r['errors'][:3]}")
    print(f"daemon idle at end {r['idle_at_end']}")
    local_rate = r["in_process_jobs_per_s"]
    print(
        f"throughput         {daemon_rate:.1f} jobs/s via the daemon; warm in-process loop "
        f"{local_rate:.1f} jobs/s (one thread); ratio {daemon_rate / local_rate:.2f}"
    )
    if len(warm) >= 2:
        (j0, rss0), (j1, rss1) = warm[0], warm[-1]
        peak = max(rss for _, rss in warm)
        per_1000 = (rss1 - rss0) / max(1, j1 - j0) * 1000 / 1024
        print(
            f"RSS after {j0} jobs  {rss0 / 1024:.1f} MiB; end {rss1 / 1024:.1f} MiB; peak "
            f"{peak / 1024:.1f} MiB; drift {per_1000:+.2f} MiB per 1000 jobs"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--device", default=None, help="the daemon's device (default: best)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nst-soak-") as tmp:
        home = Path(tmp)
        for seed, name in enumerate(("rand", "other", "third")):
            save_random_style(home, name, seed=seed)
        result = soak(args, home)
    report(args, result)
    ok = not (result["wrong"] or result["lost"] or result["duplicates"] or result["errors"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
