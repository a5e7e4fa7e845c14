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


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Batched Gram matrices ``G = F F^T / (C H W)`` of ``[B, C, H, W]`` -> ``[B, C, C]``."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def grams(features: Mapping[str, torch.Tensor], layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Gram matrices of the named layers of a ``VGGFeatures`` output."""
    return {name: gram_matrix(features[name]) for name in layers}


def mean_square(x: torch.Tensor) -> torch.Tensor:
    return x.detach().square().mean().clamp_min(_EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((F - P)^2) / mean(P^2)``: Gatys' content term relative to the target's size.

    ``target`` broadcasts against ``features`` (e.g. ``[1, C, H, W]`` against a batch).
    """
    return (features - target).square().mean() / mean_square(target)


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
    return sum(
        (w / total) * style_layer_loss(grams[name], targets[name])
        for name, w in weights.items()
        if w
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
    return {n: sum(g[n] * (w / total) for g, w in items) for n in names}


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (smoothness prior)."""
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh.square().mean() + dw.square().mean()
