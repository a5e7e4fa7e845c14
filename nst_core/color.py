"""Colour handling shared by every method: keeping the photo's colours, blending.

Colour preservation follows Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in
Neural Artistic Style Transfer" (2016): *luminance-only transfer* keeps the content's
chroma (YIQ I and Q) under the stylised luminance Y; *colour histogram matching* moves
the stylised image's colour mean and covariance onto the content's.
"""

from __future__ import annotations

import torch

from nst_core.errors import ImageError, ParameterError

# RGB -> YIQ (NTSC); Y is the Rec. 601 luma used for gray output as well.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)

COLOR_MODES = (None, "luminance", "histogram")


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to every pixel of ``[1, 3, H, W]``."""
    return torch.einsum("ij,njhw->nihw", matrix.to(image.device, image.dtype), image)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    return _mix(_RGB_TO_YIQ, rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    return _mix(_YIQ_TO_RGB, yiq)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """Luminance Y of ``[1, 3, H, W]`` as ``[1, 1, H, W]``."""
    return rgb_to_yiq(rgb)[:, :1]


def _same_size(image: torch.Tensor, like: torch.Tensor, what: str) -> None:
    if image.shape[-2:] != like.shape[-2:]:
        raise ImageError(
            f"{what} is {tuple(image.shape[-2:])} pixels but the image is {tuple(like.shape[-2:])}"
        )


def preserve_luminance(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Stylised luminance with the content's chroma (luminance-only transfer)."""
    _same_size(content, styled, "the content image")
    yiq = torch.cat([rgb_to_yiq(styled)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0.0, 1.0)


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / max(pixels.shape[1], 1)
    return mean, cov + 1e-8 * torch.eye(3, dtype=cov.dtype, device=cov.device)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-10).sqrt()
    if inverse:
        values = 1.0 / values
    return vectors @ torch.diag(values) @ vectors.T


def match_histogram(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Recolour ``source`` so that its colour mean and covariance equal ``reference``'s.

    The linear map ``x -> A (x - mu_s) + mu_r`` with ``A = Sigma_r^1/2 Sigma_s^-1/2``
    (Gatys et al. 2016, colour histogram matching); images may differ in size.
    """
    mu_s, cov_s = _mean_cov(source)
    mu_r, cov_r = _mean_cov(reference)
    transform = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    pixels = source.reshape(3, -1).double()
    matched = transform @ (pixels - mu_s) + mu_r
    return matched.to(source.dtype).reshape(source.shape).clamp(0.0, 1.0)


def apply_colors(styled: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Keep the content's colours: ``None`` (style colours), ``"luminance"``, ``"histogram"``."""
    if mode is None:
        return styled
    if mode == "luminance":
        return preserve_luminance(styled, content)
    if mode == "histogram":
        return match_histogram(styled, content)
    raise ParameterError(f"unknown colour mode {mode!r}: use none, 'luminance' or 'histogram'")


def blend(
    styled: torch.Tensor,
    content: torch.Tensor,
    strength: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mix the result with the original: ``content + strength * mask * (styled - content)``.

    ``mask`` is ``[1, 1, H, W]`` in [0, 1]; soft (feathered) edges give a soft transition.
    """
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength {strength}: must be between 0 and 1")
    _same_size(content, styled, "the content image")
    weight: torch.Tensor | float = strength
    if mask is not None:
        if mask.dim() != 4 or mask.shape[:2] != (1, 1):
            raise ImageError(f"mask must be [1, 1, H, W], got {list(mask.shape)}")
        _same_size(mask, styled, "the mask")
        weight = mask.to(styled.device, styled.dtype).clamp(0.0, 1.0) * strength
    elif strength == 1.0:
        return styled
    elif strength == 0.0:
        return content.clone()
    return content + (styled - content) * weight
