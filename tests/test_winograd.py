"""Winograd F(4x4, 3x3) convolution against PyTorch's own."""

import pytest
import torch
import torch.nn.functional as F

from nst_core.winograd import conv3x3, transform_kernel


def assert_close_to_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
    expected = F.conv2d(x, weight, bias)
    got = conv3x3(x, transform_kernel(weight), bias)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 2e-5 * expected.abs().max().item()


@pytest.mark.parametrize("size", [(16, 16), (13, 22), (4, 7), (1, 1), (130, 66)])
def test_matches_conv2d_for_any_size(size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(sum(size))
    x = torch.randn(2, 8, size[0] + 2, size[1] + 2, generator=gen)
    assert_close_to_conv2d(x, torch.randn(5, 8, 3, 3, generator=gen), torch.randn(5, generator=gen))


def test_matches_conv2d_channels_last_with_128_channels() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 128, 34, 34, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(128, 128, 3, 3, generator=gen) * 0.05
    assert_close_to_conv2d(x, weight, torch.randn(128, generator=gen))


def test_identity_filter_returns_the_input() -> None:
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    x = torch.randn(1, 1, 10, 9, generator=torch.Generator().manual_seed(2))
    got = conv3x3(x, transform_kernel(weight), torch.zeros(1))
    torch.testing.assert_close(got, x[:, :, 1:-1, 1:-1], rtol=0, atol=1e-5)
