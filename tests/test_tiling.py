"""Tiling: coverage, feathered blending, and seams of the tiled fast method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_fast import random_net

from nst_core import fast
from nst_core.errors import Cancelled, ParameterError
from nst_core.fast import FastRunner, runner_for, stylize_fast, stylize_tiled
from nst_core.images import load_image, resize
from nst_core.paths import bundled_styles_dir
from nst_core.progress import CancelToken, Progress
from nst_core.styles import preview_pattern
from nst_core.tiling import tile_starts, tiled
from nst_core.transformer_net import load_style_model

STYLE = "starry-night"
EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "lighthouse.png"


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


def test_small_tiles_have_no_visible_seams() -> None:
    """64 px tiles (smaller than the context margin, so every pixel of a tile sees
    neighbours' context; corners where four tiles meet): shared InstanceNorm statistics
    + margins agree with the whole run; per-tile statistics (the naive way) do not."""
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
        return 255 * max(along_rows.item(), along_cols.item())

    assert seam_error(ours) < 0.5  # levels of 255
    assert seam_error(naive) > 20 * seam_error(ours)
    assert 255 * (ours - whole).abs().max() < 0.5


def test_real_tiles_have_no_visible_seams(monkeypatch: pytest.MonkeyPatch) -> None:
    """The automatic path at the real tile size (1024 px, 48 px margins, 32 px overlap)
    with a bundled style, its statistics taken from a downscaled copy: the thresholds are
    lowered so that a 2016x64 strip (two tiles meeting in a vertical seam) is tiled and
    its statistics are those of a 512 px copy. The tiled result must equal one pass over
    the whole strip with the same statistics, at the seam and everywhere, in 0-255 levels;
    tiles normalised on their own (the naive way) must show there."""
    monkeypatch.setattr(fast, "MAX_UNTILED_PIXELS", 64 * 1024)
    monkeypatch.setattr(fast, "STATS_SIDE", 512)
    height, width = 64, 2 * fast.DEFAULT_TILE - fast.TILE_OVERLAP
    photo, _ = load_image(EXAMPLE_PHOTO)
    image = resize(photo[..., 100:164, :], (height, width))  # a band of the photo
    model = load_style_model(bundled_styles_dir() / f"{STYLE}.safetensors")
    runner = runner_for(model, "cpu")
    events: list[Progress] = []
    ours = stylize_fast(model, image, device="cpu", progress=events.append)
    assert [(e.step, e.total) for e in events] == [(1, 2), (2, 2)]  # tiled, two tiles

    copy = (round(height * 512 / width), 512)  # the downscaled copy of stylize_tiled
    _, stats = runner.run(resize(image, copy))  # the statistics all tiles share
    assert copy == (16, 512) and len(stats) == 15
    whole = runner.run(image, stats)[0]
    seams = _seam_lines(
        tile_starts(width, fast.DEFAULT_TILE, fast.TILE_OVERLAP, 4), fast.DEFAULT_TILE
    )
    assert seams == [992, 1023]

    def levels(result: torch.Tensor, columns: slice | list[int] = slice(None)) -> float:
        return 255 * (result - whole)[..., columns].abs().max().item()

    naive = tiled(
        lambda t: runner.run(t)[0],
        image,
        fast.DEFAULT_TILE,
        fast.TILE_OVERLAP,
        margin=fast.TILE_MARGIN,
        align=4,
    )
    print(
        f"\nseams at 1024 px tiles: ours {levels(ours, seams):.4f}, naive "
        f"{levels(naive, seams):.1f} levels; ours anywhere {levels(ours):.4f}"
    )
    assert levels(ours, seams) < 0.5 and levels(ours) < 0.5
    assert levels(naive, seams) > 4  # the metric sees seams where there are some


def test_out_of_memory_on_a_small_image_still_falls_back_to_tiles(monkeypatch) -> None:
    """An image that fails at full size also fails a full-size statistics pass: after an
    out-of-memory error the statistics come from a copy no larger than a tile's pass."""
    limit = 200_000  # pixels per network pass; the 800x600 picture has 480,000
    passes: list[int] = []
    real_run = FastRunner.run

    def run(self, image, stats=None):
        height, width = image.shape[-2:]
        passes.append(height * width)
        if height * width > limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory (injected)")
        return real_run(self, image, stats)

    monkeypatch.setattr(FastRunner, "run", run)
    net = random_net(3)
    image = resize(preview_pattern(256), (600, 800))
    tiles: list[Progress] = []
    styled = stylize_fast(net, image, progress=tiles.append)
    assert styled.shape == image.shape
    assert passes[0] == 480_000 and max(passes[1:]) > limit  # full size, then a retry
    assert passes[-1] <= limit and len([p for p in tiles if p.stage == "stylize"]) > 2
