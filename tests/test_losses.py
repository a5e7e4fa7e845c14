"""Loss maths against hand-computed values, and invariance to activation scale."""

from __future__ import annotations

import pytest
import torch

from nst_core.losses import (
    blend_grams,
    content_loss,
    gram_matrix,
    grams,
    style_layer_loss,
    style_loss,
    total_variation,
)


def test_gram_matrix_by_hand() -> None:
    # C=2 channels, H=W=2: rows [0,1,2,3] and [4,5,6,7]
    f = torch.arange(8.0).view(1, 2, 2, 2)
    g = gram_matrix(f)
    # F F^T = [[14, 38], [38, 126]], divided by C*H*W = 8
    expected = torch.tensor([[[14.0, 38.0], [38.0, 126.0]]]) / 8
    assert torch.allclose(g, expected)


def test_gram_matrix_is_batched() -> None:
    f = torch.rand(3, 4, 5, 6)
    g = gram_matrix(f)
    assert g.shape == (3, 4, 4)
    for i in range(3):
        assert torch.allclose(g[i : i + 1], gram_matrix(f[i : i + 1]), atol=1e-6)


def test_content_loss_by_hand() -> None:
    target = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    feats = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 1, 2, 2)
    # mean sq error = 4/4 = 1; mean sq target = 30/4 = 7.5
    assert content_loss(feats, target).item() == pytest.approx(1 / 7.5)
    assert content_loss(target, target).item() == 0.0


def test_style_loss_by_hand_and_layer_weights() -> None:
    a = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
    g = torch.tensor([[[3.0, 1.0], [1.0, 2.0]]])
    # mean((G-A)^2) = (1+1+1+0)/4 = 0.75 ; mean(A^2) = 8/4 = 2
    assert style_layer_loss(g, a).item() == pytest.approx(0.375)
    loss = style_loss({"x": g, "y": a}, {"x": a, "y": a}, {"x": 3.0, "y": 1.0})
    # weights normalised to 3/4 and 1/4; the second layer matches exactly
    assert loss.item() == pytest.approx(0.75 * 0.375)


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    # vertical diffs 0, horizontal diffs 1 (mean of squares = 1)
    assert total_variation(x).item() == pytest.approx(1.0)
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0


def test_losses_do_not_depend_on_activation_scale() -> None:
    torch.manual_seed(0)
    f, p = torch.rand(2, 8, 6, 6), torch.rand(1, 8, 6, 6)
    for scale in (0.01, 100.0):
        assert content_loss(f * scale, p * scale).item() == pytest.approx(
            content_loss(f, p).item(), rel=1e-4
        )
        g = grams({"a": f * scale}, ["a"])
        t = {"a": gram_matrix(p * scale)}
        ref = style_loss(grams({"a": f}, ["a"]), {"a": gram_matrix(p)}, {"a": 1.0})
        assert style_loss(g, t, {"a": 1.0}).item() == pytest.approx(ref.item(), rel=1e-4)


def test_blend_grams_is_weighted_mean() -> None:
    a, b = {"l": torch.ones(1, 2, 2)}, {"l": torch.full((1, 2, 2), 4.0)}
    out = blend_grams([(a, 1.0), (b, 3.0)])
    assert torch.allclose(out["l"], torch.full((1, 2, 2), 3.25))
    with pytest.raises(ValueError):
        blend_grams([(a, 0.0)])


def test_style_loss_gradient_flows_to_features() -> None:
    f = torch.rand(1, 4, 5, 5, requires_grad=True)
    target = gram_matrix(torch.rand(1, 4, 5, 5))
    style_loss(grams({"a": f}, ["a"]), {"a": target}, {"a": 1.0}).backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradient_is_exact(layout) -> None:
    f = torch.rand(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
    assert torch.autograd.gradcheck(gram_matrix, (f.requires_grad_(True),))


def test_gram_matrix_of_bf16_features_is_float32_and_exact() -> None:
    f = torch.rand(1, 16, 64, 64).bfloat16().contiguous(memory_format=torch.channels_last)
    g = gram_matrix(f)
    assert g.dtype == torch.float32
    exact = gram_matrix(f.double()).float()
    assert torch.allclose(g, exact, rtol=1e-5, atol=0)
    grad = torch.autograd.grad(gram_matrix(f.requires_grad_(True)).sum(), f)[0]
    assert grad.dtype == torch.bfloat16 and grad.shape == f.shape
