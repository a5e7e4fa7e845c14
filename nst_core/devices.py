"""Which device the engine computes on, and giving its cached memory back.

One policy for every front-end and the training: a CUDA GPU when there is one, else
Apple's MPS, else the CPU; a device asked for by name must exist.
"""

from __future__ import annotations

import torch

from nst_core.errors import ParameterError
from nst_core.memory import release_freed_memory


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and bool(mps.is_available())


def default_device() -> str:
    """The best device of this machine: ``cuda``, else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device`` (``None``: :func:`default_device`).

    ``ParameterError`` for a name torch does not know, or a GPU this machine lacks.
    """
    if device is None:
        return torch.device(default_device())
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ParameterError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' asked for, but no CUDA GPU is available")
    if resolved.type == "mps" and not _mps_available():
        raise ParameterError("device 'mps' asked for, but this machine has no MPS device")
    return resolved


def release_memory(device: str | torch.device | None = None) -> None:
    """Give cached, unused memory back: the CUDA cache of ``device`` (when a GPU) and the
    host memory kept by :func:`nst_core.memory.keep_freed_memory`."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    release_freed_memory()


def describe_device(device: torch.device) -> str:
    """``device`` in words: the GPU's name for CUDA."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def memory_info(device: torch.device) -> dict[str, int]:
    """Bytes allocated/reserved/free/total on a CUDA device; empty for other devices."""
    if device.type != "cuda":
        return {}
    free, total = torch.cuda.mem_get_info(device)
    return {
        "allocated": torch.cuda.memory_allocated(device),
        "reserved": torch.cuda.memory_reserved(device),
        "free": free,
        "total": total,
    }
