"""Tiling: coverage, feathered blending, and seams of the tiled fast method."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_fast import random_net

from nst_core.errors import Cancelled, ParameterError
from nst_core.fast import FastRunner, stylize_tiled
from nst_core.progress import CancelToken
from nst_core.styles import preview_pattern
from nst_core.tiling import tile_starts, tiled


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "align"),
    [(10, 4, 1, 1), (100, 32, 8, 4), (64, 64, 8, 1), (65, 64, 8, 1)],
)
def test_tiles_cover_the_image_with_overlap(length: int, tile: int, overlap: int, align: int):
    starts = tile_starts(length, tile, overlap, align)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))
    assert all(s % align == 0 for s in starts)


def test_pointwise_function_is_reproduced_exactly() -> None:
    image = torch.rand(1, 3, 37, 50)
    events = []
    result = tiled(lambda t: t * 2, image, 16, 4, progress=events.append, margin=3)
    assert torch.allclose(result, image * 2, atol=1e-6)
    assert [e.step for e in events] == list(range(1, len(events) + 1)) and len(events) > 4


def test_tiling_checks_arguments_and_cancel() -> None:
    with pytest.raises(ParameterError):
        tiled(lambda t: t, torch.rand(1, 3, 8, 8), 4, 4)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        tiled(lambda t: t, torch.rand(1, 3, 8, 8), 4, 1, cancel=token)


def _seam_lines(starts: list[int], tile: int) -> list[int]:
    return sorted({s + tile - 1 for s in starts[:-1]} | {s for s in starts[1:]})


def test_tiled_fast_method_has_no_visible_seams() -> None:
    """Shared InstanceNorm statistics + context margins: tiles agree with the whole run;
    per-tile statistics (the naive way) do not."""
    runner = FastRunner(random_net(1), "cpu")
    image = F.interpolate(preview_pattern(128), size=(96, 120), mode="bilinear")
    whole = runner(image)
    ours = stylize_tiled(runner, image, 64)
    naive = tiled(runner, image, 64, 32)
    assert ours.shape == image.shape

    rows, cols = tile_starts(96, 64, 32, 4), tile_starts(120, 64, 32, 4)

    def seam_error(result: torch.Tensor) -> float:
        along_rows = (result - whole)[..., _seam_lines(rows, 64), :].abs().max()
        along_cols = (result - whole)[..., _seam_lines(cols, 64)].abs().max()
        return max(along_rows.item(), along_cols.item())

    assert seam_error(ours) < 2e-3
    assert seam_error(naive) > 20 * seam_error(ours)
    assert (ours - whole).abs().max() < 2e-3
