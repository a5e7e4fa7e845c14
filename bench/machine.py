"""Where a benchmark runs: the machine (one line at the top of every bench) and the
reference data it reads (``../shared`` beside the checkout, or ``$NST_SHARED``; see
``pack_reference_data.py`` for a compact copy). The VGG16 weights are the package's
bundled ones, so they need no reference data."""

from __future__ import annotations

import os
import platform
from pathlib import Path

SHARED = Path(os.environ.get("NST_SHARED") or Path(__file__).resolve().parents[2] / "shared")
VGG16_WEIGHTS = (
    Path(__file__).resolve().parents[1] / "nst_core" / "bundled_vgg" / "vgg16_features.safetensors"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """CPU, cores, torch threads, GPU, versions and the load average (busy machines are slow)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu_model()}), "
        f"{gpu}, Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {load}"
    )
