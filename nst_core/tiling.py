"""Process large images in overlapping tiles, blended with linear (feathered) ramps.

Generic over any ``fn`` mapping a ``[1, C, h, w]`` tile to a ``[1, C', h, w]`` result.
Each tile's weight ramps linearly from ~0 at an edge shared with a neighbour to 1 at
the end of the overlap, so seams fade across the whole overlap; image borders keep
weight 1. The output accumulates on the input's device (keep a huge image on the CPU
and let ``fn`` move tiles to the accelerator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nst_core.errors import ParameterError
from nst_core.progress import CancelToken, Progress, ProgressCallback, check


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping by about
    ``overlap`` or more (evenly spread), rounded to multiples of ``align``."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    starts = [align * round(i * (length - tile) / (count - 1) / align) for i in range(count)]
    starts[-1] = length - tile
    return starts


def _ramp(size: int, before: int, after: int) -> torch.Tensor:
    """Weights along one axis of a tile: rising over ``before``, falling over ``after``."""
    position = torch.arange(size, dtype=torch.float32) + 0.5
    weight = torch.ones(size)
    if before > 0:
        weight = torch.minimum(weight, position / before)
    if after > 0:
        weight = torch.minimum(weight, (size - position) / after)
    return weight


def _axis_weights(starts: list[int], tile: int) -> list[torch.Tensor]:
    weights = []
    for i, start in enumerate(starts):
        before = starts[i - 1] + tile - start if i > 0 else 0
        after = start + tile - starts[i + 1] if i + 1 < len(starts) else 0
        weights.append(_ramp(tile, before, after))
    return weights


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: int,
    overlap: int,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stage: str = "tiles",
    margin: int = 0,
    align: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` tile by tile and blend; reports progress and checks ``cancel`` per tile.

    With ``margin``, ``fn`` sees each tile with up to ``margin`` pixels of real
    surroundings on every side, cropped off its result: context for operators whose
    output near an edge depends on what lies beyond it (convolutions). ``align`` keeps
    tile offsets on a grid (strided networks are only shift-invariant on their stride);
    the image's sides and ``tile`` must then be multiples of it.
    """
    if tile <= 0 or overlap < 0 or overlap >= tile or margin < 0:
        raise ParameterError(
            f"tile {tile}, overlap {overlap}, margin {margin}: "
            "need 0 <= overlap < tile and margin >= 0"
        )
    height, width = image.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows = tile_starts(height, tile_h, overlap, align)
    cols = tile_starts(width, tile_w, overlap, align)
    row_w, col_w = _axis_weights(rows, tile_h), _axis_weights(cols, tile_w)
    total = len(rows) * len(cols)
    out: torch.Tensor | None = None
    total_weight = torch.zeros(1, 1, height, width, device=image.device)
    for r, top in enumerate(rows):
        for c, left in enumerate(cols):
            check(cancel)
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(height, top + tile_h + margin), min(width, left + tile_w + margin)
            result = fn(image[..., y0:y1, x0:x1])
            result = result[..., top - y0 : top - y0 + tile_h, left - x0 : left - x0 + tile_w]
            result = result.to(image.device, torch.float32)
            if out is None:
                out = torch.zeros(1, result.shape[1], height, width, device=image.device)
            weight = (row_w[r][:, None] * col_w[c][None, :]).to(image.device)
            out[..., top : top + tile_h, left : left + tile_w] += result * weight
            total_weight[..., top : top + tile_h, left : left + tile_w] += weight
            if progress is not None:
                progress(Progress(r * len(cols) + c + 1, total, stage))
    assert out is not None
    return out.div_(total_weight)  # exactly 1 except where three tiles overlap
