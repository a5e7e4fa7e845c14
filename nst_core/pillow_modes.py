"""Which Pillow images carry alpha: one rule for the engine and the CLI's image files.

A band called "A" is not enough: a CIELAB picture's bands are L, A and B, and its A is a
colour axis. Standard library only (the CLI's torch-free image code imports it).
"""

from __future__ import annotations

from typing import Any

ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def has_alpha(image: Any) -> bool:
    """Whether a ``PIL.Image`` has an alpha channel or a transparent palette/colour."""
    return image.mode in ALPHA_MODES or "transparency" in image.info
