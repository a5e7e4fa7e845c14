"""Which part of a layer to send to the daemon (pure arithmetic; no GIMP imports)."""

from __future__ import annotations

from typing import NamedTuple


class Rect(NamedTuple):
    x: int
    y: int
    width: int
    height: int


def context_margin(width: int, height: int) -> int:
    """Extra pixels around a selection so the network sees the surroundings of the region."""
    return max(32, round(0.1 * max(width, height)))


def region_to_send(layer: Rect, selection: Rect | None, margin: int | None = None) -> Rect | None:
    """The rectangle of ``layer`` to stylize, in layer coordinates.

    ``layer`` is the layer's offset and size in image coordinates; ``selection`` the
    selection's bounding box in image coordinates (None: no selection, the whole layer).
    The selection box grows by a context margin and is clipped to the layer. Returns None
    when the selection does not touch the layer.
    """
    if selection is None:
        return Rect(0, 0, layer.width, layer.height)
    if margin is None:
        margin = context_margin(selection.width, selection.height)
    x1 = max(selection.x - margin, layer.x)
    y1 = max(selection.y - margin, layer.y)
    x2 = min(selection.x + selection.width + margin, layer.x + layer.width)
    y2 = min(selection.y + selection.height + margin, layer.y + layer.height)
    touches = (
        selection.x < layer.x + layer.width
        and selection.x + selection.width > layer.x
        and selection.y < layer.y + layer.height
        and selection.y + selection.height > layer.y
    )
    if not touches:
        return None
    return Rect(x1 - layer.x, y1 - layer.y, x2 - x1, y2 - y1)
