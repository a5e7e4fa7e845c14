"""Load: 8 clients x 50 fast jobs of mixed sizes against one real daemon.

Each client keeps a few jobs in flight on its one socket, so replies of different jobs
interleave. Every client must get exactly its own 50 results, each with the pixels an
in-process run of the same request computes; no job id may repeat. The daemon's
resident memory is sampled all along and must stay flat once warm.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nst_client.protocol import Result, StylizeRequest

from daemon_helpers import (
    DaemonProcess,
    pipeline,
    reference_results,
    request_pool,
    save_random_style,
)

CLIENTS = 8
JOBS_PER_CLIENT = 50
IN_FLIGHT = 4  # per client: 8 x 4 stays under the daemon's queue limit
WARM_UP_JOBS = 80  # RSS is compared from here on
RSS_GROWTH_LIMIT_KB = 24 * 1024  # allocator noise; a leak of even 60 KiB a job exceeds it


def run_client(
    daemon: DaemonProcess,
    index: int,
    pool: list[StylizeRequest],
    done: list[int],
    out: list[tuple[int, Result]],
) -> None:
    """50 jobs with ``IN_FLIGHT`` outstanding; ``out`` gets (pool index, result) pairs."""
    picks = [(index * 13 + j * 7) % len(pool) for j in range(JOBS_PER_CLIENT)]
    with daemon.client(timeout=120) as client:
        for pick, result in pipeline(client, [(p, pool[p]) for p in picks], IN_FLIGHT):
            out.append((pick, result))
            done[0] += 1


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("load")
    save_random_style(home, "rand", seed=0)
    save_random_style(home, "other", seed=1)
    return home


def test_eight_clients_get_exactly_their_own_results(home: Path) -> None:
    pool = request_pool(24)
    expected = reference_results(home, pool)
    outputs: list[list[tuple[int, Result]]] = [[] for _ in range(CLIENTS)]
    done = [0]
    errors: list[str] = []
    samples: list[tuple[int, int]] = []  # (jobs done, daemon RSS in KiB)

    def client(i: int) -> None:
        try:
            run_client(daemon, i, pool, done, outputs[i])
        except Exception as exc:  # asserted below, in the test's thread
            errors.append(f"client {i}: {exc!r}")

    with DaemonProcess(home) as daemon:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            samples.append((done[0], daemon.rss_kb()))
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        samples.append((done[0], daemon.rss_kb()))
        status = daemon.status()

    assert errors == []
    job_ids = []
    for i, results in enumerate(outputs):
        assert len(results) == JOBS_PER_CLIENT, f"client {i} got {len(results)} results"
        for pick, result in results:
            assert result.image.data == expected[pick], f"client {i}: wrong pixels"
            job_ids.append(result.job_id)
    assert len(set(job_ids)) == CLIENTS * JOBS_PER_CLIENT  # none duplicated
    assert status.running == () and status.queue == ()

    warm = [rss for jobs, rss in samples if jobs >= WARM_UP_JOBS]
    assert len(warm) >= 5, "too few memory samples after warm-up"
    growth = max(warm) - warm[0]
    print(
        f"\nload: {CLIENTS * JOBS_PER_CLIENT} jobs in {elapsed:.1f} s; daemon RSS "
        f"{warm[0] / 1024:.0f} MiB after {WARM_UP_JOBS} jobs, max {max(warm) / 1024:.0f} MiB,"
        f" end {warm[-1] / 1024:.0f} MiB ({len(samples)} samples)"
    )
    assert growth < RSS_GROWTH_LIMIT_KB, f"daemon RSS grew {growth} KiB after warm-up"
