"""What a style name may be: the one rule for the protocol, the catalogue, training and CLI.

A style name is also a file name (``<name>.safetensors`` in a styles folder), so it must
never be a path: letters and digits first, then letters, digits, ``_``, ``.`` or ``-``,
at most 64 characters, no ``..``, no trailing dot and no control characters (``"nl\\n"``
is refused, not written to disk and then never found). Standard library only: the
engine (``nst_core.styles``, ``nst_core.train``) and the GIMP plug-in both use this module.
"""

from __future__ import annotations

import re

MAX_STYLE_NAME = 64
STYLE_NAME_RULE = (
    "letters, digits, '_', '-' and '.', starting with a letter or digit, "
    f"at most {MAX_STYLE_NAME} characters"
)
_STYLE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_STYLE_NAME - 1}}}")


def looks_like_path(name: str) -> bool:
    """A name that tries to reach a file (``/``, ``\\``, ``..``, ``~``, a leading dot)."""
    return any(mark in name for mark in ("/", "\\", "..", "\0")) or name.startswith((".", "~"))


def style_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid style name, or ``None`` when it is one."""
    if not isinstance(name, str):
        return "is not a string"
    if looks_like_path(name):
        return "looks like a file path, not a style name"
    if not _STYLE_NAME.fullmatch(name) or name.endswith("."):
        return f"is not a valid style name ({STYLE_NAME_RULE})"
    return None


def is_style_name(name: object) -> bool:
    return style_name_problem(name) is None


def slug(text: str) -> str:
    """A valid style name made from free text (a file stem, a painting's title)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-_")
    name = re.sub(r"\.{2,}", ".", name)[:MAX_STYLE_NAME].rstrip(".-_")
    return name or "style"
