"""Loss terms of Gatys et al. (2016) and Johnson et al. (2016), normalised per layer.

Activation magnitudes differ by ~100x between ImageNet VGG weight sets (Caffe-derived
weights expect 0-255 input), so raw squared errors would need different loss weights for
each weight file. Here every term is divided by the magnitude of its own target: the
content term by the mean square of the target features, each style layer's term by the
mean square of its target Gram matrix. Scaling a layer's activations by any factor leaves
the losses unchanged, so one set of default weights works for every weight file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import torch

# Gatys et al. 2016: content relu4_2 (conv4_2 in the paper), style relu1_1..relu5_1.
GATYS_CONTENT_LAYER = "relu4_2"
GATYS_STYLE_WEIGHTS: dict[str, float] = {
    "relu1_1": 1.0,
    "relu2_1": 1.0,
    "relu3_1": 1.0,
    "relu4_1": 1.0,
    "relu5_1": 1.0,
}
# Johnson et al. 2016 (VGG16): content relu2_2, style relu1_2, relu2_2, relu3_3, relu4_3.
JOHNSON_CONTENT_LAYER = "relu2_2"
JOHNSON_STYLE_WEIGHTS: dict[str, float] = {
    "relu1_2": 1.0,
    "relu2_2": 1.0,
    "relu3_3": 1.0,
    "relu4_3": 1.0,
}

_EPS = 1e-12


def _products(rows: torch.Tensor) -> torch.Tensor:
    """``rows^T rows``, in float32 for bf16 rows. Not in bf16: the products would
    accumulate in float32 but be stored in bf16, 3 digits, and near convergence the
    style term measures differences of a few percent between Gram matrices."""
    exact = rows.float() if rows.dtype == torch.bfloat16 else rows
    return torch.bmm(exact.transpose(1, 2), exact)


class _Gram(torch.autograd.Function):
    """``F F^T / n`` with a one-product backward, in the features' own layout and dtype.

    The features are read as ``[B, H*W, C]`` rows: a view, no copy, when they are
    channels-last (as the bf16 loss network makes them). The gradient ``(dG + dG^T) F / n``
    is one matrix product instead of autograd's two plus a sum, computed in bf16 for bf16
    features (it flows on into the bf16 network anyway). fp16 features are taken to
    float32 (their sums would overflow). The Gram matrix itself is float32: ``_products``.
    On a 512x512 Gatys step these make the Gram matrices a small part instead of most of
    the work once the convolutions are native bf16 (docs/performance.md).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, h, w = features.shape
        rows = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        if rows.dtype == torch.float16:
            rows = rows.float()
        ctx.save_for_backward(rows)
        ctx.shape, ctx.dtype = (b, c, h, w), features.dtype
        return _products(rows) / (c * h * w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        b, c, h, w = ctx.shape
        symmetric = ((grad + grad.transpose(1, 2)) / (c * h * w)).to(rows.dtype)
        return torch.bmm(rows, symmetric).to(ctx.dtype).view(b, h, w, c).permute(0, 3, 1, 2)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Batched Gram matrices ``G = F F^T / (C H W)`` of ``[B, C, H, W]`` -> ``[B, C, C]``:
    float32 for bf16 or fp16 features, else in their dtype (see ``_Gram``)."""
    return cast(torch.Tensor, _Gram.apply(features))


def grams(features: Mapping[str, torch.Tensor], layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Gram matrices of the named layers of a ``VGGFeatures`` output."""
    return {name: gram_matrix(features[name]) for name in layers}


def mean_square(x: torch.Tensor) -> torch.Tensor:
    return x.detach().square().mean().clamp_min(_EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((F - P)^2) / mean(P^2)``: Gatys' content term relative to the target's size.

    ``target`` broadcasts against ``features`` (e.g. ``[1, C, H, W]`` against a batch).
    """
    target = target.float()
    return (features.float() - target).square().mean() / mean_square(target)


def style_layer_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((G - A)^2) / mean(A^2)`` for one layer; ``target`` ``[1|B, C, C]`` broadcasts."""
    return (gram - target).square().mean() / mean_square(target)


def style_loss(
    grams: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
) -> torch.Tensor:
    """Weighted sum over layers of ``style_layer_loss`` (Gatys' ``sum_l w_l E_l``).

    ``grams`` and ``targets`` map layer names to ``[B, C, C]`` and ``[1 or B, C, C]``.
    The weights are normalised to sum to 1, so the style term's size does not depend on
    how many layers are used.
    """
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("style layer weights must sum to a positive number")
    return cast(
        torch.Tensor,
        sum(  # a tensor: at least one weight is positive
            (w / total) * style_layer_loss(grams[name], targets[name])
            for name, w in weights.items()
            if w
        ),
    )


def blend_grams(
    style_grams: Iterable[tuple[Mapping[str, torch.Tensor], float]],
) -> dict[str, torch.Tensor]:
    """Weighted mean of several styles' Gram matrices: the target for blended styles."""
    items = list(style_grams)
    total = sum(w for _, w in items)
    if not items or total <= 0:
        raise ValueError("need at least one style with a positive weight")
    names = items[0][0].keys()
    return {n: cast(torch.Tensor, sum(g[n] * (w / total) for g, w in items)) for n in names}


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (smoothness prior)."""
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh.square().mean() + dw.square().mean()


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of ``[B, 3, H, W]`` as ``[B, H, W]``."""
    r, g, b = rgb.float().unbind(1)
    return 0.299 * r + 0.587 * g + 0.114 * b


GRID_PERIOD = 4  # the decoder's two x2 upsamplings


def grid_power(rgb: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """How much of the luminance is the network's 4-pixel grid: a normalised term.

    The luminance is split into its 16 phases (pixel ``(4i + a, 4j + b)`` belongs to phase
    ``(a, b)``); each phase is averaged over windows of ``window`` x ``window`` blocks of
    4x4 pixels (``None``: the whole image), and the term is the mean square of how far the
    16 phase means stand from their own mean, over the luminance variance (detached, so
    the network cannot lower the term by adding other texture).

    Over the whole image this is the power of the luminance spectrum at every non-zero
    multiple of 1/4 cycle per pixel, (±¼, ±¼), (±½, 0), (0, ±½), (±½, ±½), (±¼, 0),
    (0, ±¼) ... (the frequencies ``bench/grid_score.py`` reads), divided by the total
    power; over windows it also catches a grid whose phase drifts across the picture.
    """
    y = luminance(rgb)
    p = GRID_PERIOD
    b, h, w = y.shape
    h, w = h - h % p, w - w % p
    y = y[:, :h, :w]
    phases = (
        y.reshape(b, h // p, p, w // p, p).permute(0, 2, 4, 1, 3).reshape(b, p * p, h // p, w // p)
    )
    if window is None or window >= min(h, w) // p:
        means = phases.mean(dim=(2, 3), keepdim=True)
    else:
        means = torch.nn.functional.avg_pool2d(phases, window, stride=window)
    deviation = means - means.mean(dim=1, keepdim=True)
    return deviation.square().mean() / y.detach().var().clamp_min(_EPS)


def remove_grid(rgb: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` (sides multiples of 4) without its period-4 phase pattern.

    Each channel's 16 phases (pixel ``(4i + a, 4j + b)`` is in phase ``(a, b)``) are
    shifted to a common mean: exactly the picture with every spectral component at a
    non-zero multiple of 1/4 cycle per pixel set to zero (the grid frequencies of
    :func:`grid_power`), everything else unchanged.
    """
    b, c, h, w = rgb.shape
    p = GRID_PERIOD
    if h % p or w % p:
        raise ValueError(f"sides {h}x{w} are not multiples of {p}")
    blocks = rgb.reshape(b, c, h // p, p, w // p, p)
    phase_means = blocks.mean(dim=(2, 4), keepdim=True)
    return (blocks - phase_means + phase_means.mean(dim=(3, 5), keepdim=True)).reshape(b, c, h, w)
