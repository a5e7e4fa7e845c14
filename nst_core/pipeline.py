"""One stylisation job, run the same way for every front-end (daemon, CLI, batch, cluster,
video, bench).

:func:`stylize` takes a full-size picture and returns it stylised at full size:

1. the picture is scaled down so that its long side is at most ``max_size``;
2. the fast network (``model``, or ``network`` for a caller's own runner) or the Gatys
   optimisation (``styles`` with ``vgg``) paints it;
3. the result is scaled back to full size;
4. the photo's colours are kept (``preserve_colors``), against the full-size original;
5. it is blended with the original by ``strength`` and the selection ``mask``.

Callers load the networks (and may cache them); this module only runs them.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Literal

import torch

from nst_core.color import COLOR_MODES, apply_colors, blend
from nst_core.errors import ImageError, ParameterError
from nst_core.images import resize
from nst_core.progress import CancelToken, ProgressCallback, check

if TYPE_CHECKING:
    from nst_core.gatys import GatysParams, StyleTargets
    from nst_core.transformer_net import StyleModel, TransformerNet
    from nst_core.vgg import VGGFeatures

Method = Literal["fast", "gatys"]
#: A caller's own fast network: small picture in, stylised picture of the same size out
#: (the daemon's temporally consistent video frames).
Network = Callable[[torch.Tensor], torch.Tensor]


def processing_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """(height, width) with the long side at most ``max_size``, aspect kept."""
    if not max_size or max(height, width) <= max_size:
        return height, width
    factor = max_size / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def _check(
    content: torch.Tensor,
    mask: torch.Tensor | None,
    strength: float,
    preserve_colors: str | None,
    max_size: int | None,
) -> None:
    if content.dim() != 4 or content.shape[:2] != (1, 3) or min(content.shape[-2:]) < 1:
        raise ImageError(f"expected an RGB image [1, 3, H, W], got {list(content.shape)}")
    if mask is not None and (
        mask.dim() != 4 or mask.shape[:2] != (1, 1) or mask.shape[-2:] != content.shape[-2:]
    ):
        raise ImageError(
            f"the mask must be [1, 1, H, W] of the picture's size, got {list(mask.shape)}"
        )
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength {strength}: must be between 0 and 1")
    if preserve_colors not in COLOR_MODES:
        raise ParameterError(
            f"unknown colour mode {preserve_colors!r}: use none, 'luminance' or 'histogram'"
        )
    if max_size is not None and max_size < 1:
        raise ParameterError(f"max_size {max_size}: must be positive")


def _paint(
    small: torch.Tensor,
    method: Method,
    *,
    model: StyleModel | TransformerNet | None,
    network: Network | None,
    styles: Sequence[tuple[torch.Tensor, float]],
    vgg: VGGFeatures | None,
    gatys: GatysParams | None,
    init_model: StyleModel | TransformerNet | None,
    targets: MutableMapping[int, StyleTargets] | None,
    tile_size: int | None,
    device: str | torch.device | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> torch.Tensor:
    """Step 2: the network or the optimisation on the (scaled-down) picture."""
    from nst_core.fast import stylize_fast

    if method == "fast":
        if network is not None:
            return network(small)
        if model is None:
            raise ParameterError("the fast method needs a style model")
        return stylize_fast(
            model, small, tile_size=tile_size, device=device, progress=progress, cancel=cancel
        )
    if method != "gatys":
        raise ParameterError(f"unknown method {method!r}: use 'fast' or 'gatys'")
    if vgg is None or not styles:
        raise ParameterError("the Gatys method needs the VGG network and a style image")
    from nst_core.gatys import stylize_gatys

    init = None
    if init_model is not None:  # start from the fast style (the same small picture)
        init = stylize_fast(init_model, small, device=device, cancel=cancel)
    return stylize_gatys(
        small, styles, vgg, gatys, init=init, progress=progress, cancel=cancel, targets=targets
    )


def stylize(
    content: torch.Tensor,
    *,
    method: Method = "fast",
    model: StyleModel | TransformerNet | None = None,
    network: Network | None = None,
    styles: Sequence[tuple[torch.Tensor, float]] = (),
    vgg: VGGFeatures | None = None,
    gatys: GatysParams | None = None,
    init_model: StyleModel | TransformerNet | None = None,
    targets: MutableMapping[int, StyleTargets] | None = None,
    max_size: int | None = None,
    tile_size: int | None = None,
    preserve_colors: str | None = None,
    strength: float = 1.0,
    mask: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> torch.Tensor:
    """Stylise ``content`` (``[1, 3, H, W]`` in [0, 1]); returns ``[1, 3, H, W]`` on the CPU.

    ``method="fast"`` runs ``model`` (or the caller's ``network``) with ``tile_size`` on
    ``device``; ``method="gatys"`` optimises with ``styles = [(image, weight), ...]`` and
    ``vgg`` under ``gatys`` (``GatysParams``; its own colour and mask settings are left
    unused: steps 4 and 5 apply them), starting from ``init_model``'s fast stylisation
    when given, with ``targets`` as the cache of style Gram matrices. ``mask``
    (``[1, 1, H, W]``, 1 where the style applies) and ``strength`` blend the result with
    the original; ``preserve_colors`` is ``None``, ``"luminance"`` or ``"histogram"``.
    Alpha is the caller's: pass RGB only.
    """
    _check(content, mask, strength, preserve_colors, max_size)
    check(cancel)
    rgb = content.detach().cpu().float()
    height, width = rgb.shape[-2:]
    small = resize(rgb, processing_size(height, width, max_size))
    styled = _paint(
        small,
        method,
        model=model,
        network=network,
        styles=styles,
        vgg=vgg,
        gatys=gatys,
        init_model=init_model,
        targets=targets,
        tile_size=tile_size,
        device=device,
        progress=progress,
        cancel=cancel,
    )
    styled = resize(styled.detach().cpu().float(), (height, width))
    styled = apply_colors(styled, rgb, preserve_colors)
    return blend(styled, rgb, strength, mask.detach().cpu().float() if mask is not None else None)


__all__ = ["Method", "Network", "processing_size", "stylize"]
