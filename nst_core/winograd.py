"""3x3 convolution by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016).

Each 4x4 block of output pixels is computed from a 6x6 input tile with 36 multiplies per
channel pair instead of 144: the tile and the kernel are transformed (``B^T d B`` and
``G g G^T``), multiplied element by element (as 36 matrix products over the channels,
which is where the time goes), and transformed back (``A^T m A``).

On a CPU without a Winograd kernel in oneDNN (AVX2), this takes about a sixth off a
512x512 fast run, whose residual-block convolutions are most of the work. Results agree
with ``F.conv2d`` to about 1e-5 relative. GPUs have their own
(cuDNN), so :class:`~nst_core.fast.FastRunner` uses this on CPU only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# G of F(4x4, 3x3), in float64 while the kernels are transformed once.
_G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)


def transform_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, Ci, 3, 3]`` as the ``[36, Ci, Co]`` matrices of ``G g G^T``."""
    co, ci = weight.shape[:2]
    g = _G.to(weight.device)
    u = torch.einsum("ik,ockl,jl->ijco", g, weight.double(), g)
    return u.reshape(36, ci, co).float().contiguous()


def _input_transform(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """``B^T`` along the 6 tile rows (or columns) ``d`` into ``out[0..5]``."""
    d0, d1, d2, d3, d4, d5 = d
    torch.add(d4, d0, alpha=4, out=out[0]).add_(d2, alpha=-5)
    p, q = torch.add(d4, d2, alpha=-4), torch.add(d3, d1, alpha=-4)
    torch.add(p, q, out=out[1])
    torch.sub(p, q, out=out[2])
    p, q = torch.sub(d4, d2), torch.sub(d3, d1).mul_(2)
    torch.add(p, q, out=out[3])
    torch.sub(p, q, out=out[4])
    torch.add(d5, d1, alpha=4, out=out[5]).add_(d3, alpha=-5)


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """``A^T`` along dim 0 of ``m`` (6 rows or columns) into ``out[0..3]``."""
    m0, m1, m2, m3, m4, m5 = m
    s, d = m1 + m2, m1 - m2
    s2, d2 = m3 + m4, m3 - m4
    torch.add(s, s2, out=out[0]).add_(m0)
    torch.add(d, d2, alpha=2, out=out[1])
    torch.add(s, s2, alpha=4, out=out[2])
    torch.add(d, d2, alpha=8, out=out[3]).add_(m5)


def conv3x3(padded: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(padded, weight, bias)`` for a 3x3 kernel, stride 1, no further padding.

    ``padded`` is ``[N, Ci, H + 2, W + 2]`` (already padded by the caller, any mode),
    ``kernel`` is :func:`transform_kernel` of the weight. Returns ``[N, Co, H, W]``,
    channels-last.
    """
    n, c, height, width = padded.shape[0], padded.shape[1], padded.shape[2] - 2, padded.shape[3] - 2
    th, tw = -(-height // 4), -(-width // 4)  # 4x4 output blocks
    extra_h, extra_w = 4 * th - height, 4 * tw - width
    if extra_h or extra_w:  # zeros there feed only outputs that are cropped off below
        padded = F.pad(padded, [0, extra_w, 0, extra_h])
    x = padded.permute(0, 2, 3, 1)  # NHWC view: channels are the matrix products' dimension
    rows = torch.empty(6, n, th, x.shape[2], c, dtype=x.dtype, device=x.device)
    _input_transform([x[:, k : k + 4 * th : 4] for k in range(6)], rows)
    tiles = torch.empty(6, 6, n, th, tw, c, dtype=x.dtype, device=x.device)
    _input_transform([rows[:, :, :, k : k + 4 * tw : 4] for k in range(6)], tiles.transpose(0, 1))

    co = kernel.shape[2]
    products = torch.bmm(tiles.view(36, -1, c), kernel).view(6, 6, n, th, tw, co)
    half = torch.empty(4, 6, n, th, tw, co, dtype=x.dtype, device=x.device)
    _output_transform(products, half)
    y = torch.empty(
        n, co, 4 * th, 4 * tw, dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    # y's memory is [n, th, 4 (row in block), tw, 4 (column in block), co].
    blocks = y.permute(0, 2, 3, 1).view(n, th, 4, tw, 4, co).permute(4, 2, 0, 1, 3, 5)
    _output_transform(half.transpose(0, 1), blocks)
    y.add_(bias.view(1, -1, 1, 1))
    return y[:, :, :height, :width] if extra_h or extra_w else y
