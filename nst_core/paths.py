"""Where the product keeps its data: weights, user styles, daemon state."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$NST_HOME``, else ``$XDG_DATA_HOME/neural-style`` (default ``~/.local/share``)."""
    if home := os.environ.get("NST_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "neural-style"


def weights_dir() -> Path:
    return data_dir() / "weights"


def user_styles_dir() -> Path:
    return data_dir() / "styles"


def bundled_styles_dir() -> Path:
    return Path(__file__).resolve().parent / "bundled_styles"
