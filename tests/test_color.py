"""Colour preservation and blending."""

from __future__ import annotations

import pytest
import torch

from nst_core.color import apply_colors, blend, luma, match_histogram, rgb_to_yiq
from nst_core.errors import ImageError, ParameterError


def _image(seed: int, size: int = 16, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(1, 3, size, size, generator=generator)


def test_luminance_mode_takes_styled_luminance_and_content_chroma() -> None:
    styled, content = _image(1, low=0.35, high=0.65), _image(2, low=0.35, high=0.65)
    result = apply_colors(styled, content, "luminance")
    assert torch.allclose(luma(result), luma(styled), atol=1e-5)
    assert torch.allclose(rgb_to_yiq(result)[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-5)


def test_histogram_mode_matches_colour_mean_and_covariance() -> None:
    styled = _image(3) * torch.tensor([1.0, 0.3, 0.5]).view(1, 3, 1, 1)
    content = _image(4, size=24)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = x.reshape(3, -1).double()
        return pixels.mean(1), torch.cov(pixels, correction=0)

    result = match_histogram(styled, content)
    assert result.shape == styled.shape
    for got, want in zip(stats(result), stats(content), strict=True):
        assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(apply_colors(styled, content, "histogram"), result)


def test_no_colour_mode_returns_styled_and_unknown_mode_is_refused() -> None:
    styled = _image(5)
    assert apply_colors(styled, _image(6), None) is styled
    with pytest.raises(ParameterError, match="colour mode"):
        apply_colors(styled, _image(6), "sepia")


def test_blend_strength() -> None:
    styled, content = _image(7), _image(8)
    assert torch.equal(blend(styled, content, 0.0), content)
    assert torch.equal(blend(styled, content, 1.0), styled)
    assert torch.allclose(blend(styled, content, 0.25), 0.75 * content + 0.25 * styled)
    with pytest.raises(ParameterError):
        blend(styled, content, 1.5)


def test_blend_with_feathered_mask() -> None:
    styled, content = torch.ones(1, 3, 4, 8), torch.zeros(1, 3, 4, 8)
    mask = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 1, 4, 8)
    result = blend(styled, content, 0.5, mask)
    assert torch.allclose(result, 0.5 * mask.expand(1, 3, 4, 8))
    with pytest.raises(ImageError, match="mask"):
        blend(styled, content, 1.0, torch.ones(1, 1, 3, 3))
