"""Reduced precision for the VGG loss network, where the hardware computes it natively.

VGG's convolutions are most of the work of a Gatys step and of a training step. In
bfloat16 (8 exponent bits, as float32: no overflow, no loss scaling) they run about 1.5x
faster on CPUs with native bf16 dot products (AVX512-BF16, AMX) and on recent GPUs, while
the optimisation follows the float32 one step for step. Gram matrices and loss terms stay
in float32. Elsewhere (AVX2 CPUs, older GPUs) bf16 would be emulated and slower: float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from nst_core.vgg import VGGFeatures

_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.cache
def _cpu_has_native_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return bool(_CPU_BF16_FLAGS & set(flags)) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def loss_network_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where ``device`` computes it natively, else ``None`` (stay in float32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else None
    return None


def loss_network_precision(
    device: torch.device, enabled: bool = True
) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for VGG forward passes on ``device`` where it is native; otherwise
    nothing at all, so an enclosing autocast (CUDA training's fp16 AMP) still applies."""
    dtype = loss_network_dtype(device) if enabled else None
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def loss_network_features(
    vgg: VGGFeatures,
    x: torch.Tensor,
    layers: Iterable[str] | None = None,
    *,
    enabled: bool = True,
) -> dict[str, torch.Tensor]:
    """``vgg(x, layers)`` under :func:`loss_network_precision`. bf16 features come back
    as they are (``gram_matrix`` multiplies them natively, the loss terms cast to
    float32); any other dtype (fp16 under CUDA training's AMP) as float32.

    In bf16 the picture goes in channels-last: that is the layout the native bf16
    convolutions (AMX on recent Intel CPUs, tensor cores) work in; from an NCHW picture
    oneDNN reorders around every layer, which made a 512x512 step 3x slower on an AMX
    CPU (docs/performance.md). Without native bf16 the layout makes no difference.
    """
    device = vgg.mean.device
    if enabled and loss_network_dtype(device) is not None:
        x = x.contiguous(memory_format=torch.channels_last)
    with loss_network_precision(device, enabled):
        feats = vgg(x, layers)
    return {n: f if f.dtype == torch.bfloat16 else f.float() for n, f in feats.items()}
