"""Picture files for the engine and the front-ends: which file extensions are pictures
(one list for ``nst batch``, the cluster, training photos and the bench) and which
Pillow images carry alpha.

A band called "A" is not enough: a CIELAB picture's bands are L, A and B, and its A is a
colour axis. Standard library only (the CLI's torch-free image code imports it).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

#: The extensions (lower case) of the files a folder of pictures is made of.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})
#: The same, in words for messages.
IMAGE_EXTENSIONS_TEXT = ".png, .jpg, .tif, .webp, .bmp"

ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def is_picture_file(name: str | PurePath) -> bool:
    """Whether a file name has a picture's extension (any case)."""
    return PurePath(name).suffix.lower() in IMAGE_EXTENSIONS


def has_alpha(image: Any) -> bool:
    """Whether a ``PIL.Image`` has an alpha channel or a transparent palette/colour."""
    return image.mode in ALPHA_MODES or "transparency" in image.info
