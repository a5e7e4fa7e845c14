"""The host-memory policy: freed large blocks stay for reuse until released (glibc)."""

import subprocess
import sys

import pytest

SCRIPT = """
import torch
from pathlib import Path
from nst_core.memory import keep_freed_memory, release_freed_memory

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

print(keep_freed_memory())
before = rss_mb()
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
del block
kept = rss_mb() - before
release_freed_memory()
released = rss_mb() - before
print(kept, released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc policy, Linux only")
def test_freed_memory_is_kept_until_released() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "True":
        pytest.skip("not glibc: the policy does not apply")
    kept, released = int(out[1]), int(out[2])
    assert kept >= 60, f"a freed 64 MiB block should stay resident, RSS grew {kept} MiB"
    assert released <= 8, f"release_freed_memory left {released} MiB resident"


@pytest.mark.parametrize(
    "message",
    [
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 4096 bytes",
        "could not create a primitive",  # oneDNN, when its scratchpad cannot be allocated
        "CUDA out of memory. Tried to allocate 2.00 GiB",
    ],
)
def test_failed_allocations_are_recognised_as_out_of_memory(message: str) -> None:
    from nst_core.memory import is_out_of_memory

    assert is_out_of_memory(RuntimeError(message))


def test_other_runtime_errors_are_not_out_of_memory() -> None:
    from nst_core.memory import is_out_of_memory

    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [32, 3, 9, 9]"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))
