"""Host-memory policy for CPU inference: keep freed blocks for reuse, give them back when idle.

glibc serves every allocation above 32 MB with a fresh ``mmap`` and unmaps it on free,
so each new full-resolution activation (a 512x512 image with 32 channels is 33.5 MB)
page-faults on every page: about 13 ms per tensor here, a fifth of a fast 512x512 run.
:func:`keep_freed_memory` makes glibc keep such blocks in its heap, so the next tensor of
that size reuses warm pages; :func:`release_freed_memory` returns them to the system, for
a long-running process once it has nothing to do. Both are no-ops outside glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # bytes of free heap top before glibc trims by itself


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    except OSError:
        pass
    return None


@functools.cache
def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed ones (once per process).

    Returns whether the allocator could be told so (glibc only).
    """
    libc = _libc()
    if libc is None:
        return False
    # One arena: a worker thread's own arena would keep large blocks in separate 64 MB
    # heaps that glibc unmaps when empty, losing the warm pages again.
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return all(libc.mallopt(option, value) == 1 for option, value in settings)


# What a failed host allocation looks like once torch has wrapped it in a RuntimeError:
# torch's own CPU allocator, and oneDNN, which reports a scratchpad it could not allocate
# as a primitive it could not create.
_HOST_OUT_OF_MEMORY = (
    "can't allocate memory",
    "not enough memory",
    "out of memory",
    "could not create a primitive",
    "std::bad_alloc",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device or the host running out of memory."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _HOST_OUT_OF_MEMORY)


def release_freed_memory() -> None:
    """Give free heap memory back to the system (all allocator arenas)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
