"""The one way the project writes a file: a fresh temporary beside it, then an atomic rename.

Every file the project writes (pictures, style models, VGG weights, training checkpoints)
goes through :func:`atomic_write`. The temporary is created with ``O_CREAT | O_EXCL |
O_NOFOLLOW`` under an unpredictable name in the destination folder, so a planted file or
symlink is never opened, and ``os.replace`` puts it in place in one step: an interrupted
write never leaves a half-written file under the final name, and a symlink at the final
name is replaced, never followed. Standard library only (the CLI's image code imports it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".nst-partial"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_FLAGS |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def partial_name(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path`` (``.NAME.RANDOM.nst-partial``)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")


def _open_exclusive(path: Path) -> tuple[Path, int]:
    for _ in range(100):
        tmp = partial_name(path)
        try:
            return tmp, os.open(tmp, _FLAGS, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it replaces ``path``, on an error it is deleted.

    The data is flushed to disk before the rename, so a crash leaves either the old file
    or the complete new one. The folder must exist (``FileNotFoundError`` otherwise).
    """
    path = Path(path)
    tmp, fd = _open_exclusive(path)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_partials(folder: Path) -> int:
    """Delete the temporaries that killed writers left in ``folder``; returns how many."""
    count = 0
    for stale in folder.glob(f".*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
            count += 1
    return count
