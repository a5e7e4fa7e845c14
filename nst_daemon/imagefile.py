"""Image files ⇄ wire images, without torch: what the CLI reads and writes.

Both ways through the daemon and ``--local`` go through these two functions, so the
pixels a job sees never depend on where it runs. Writes are atomic: the picture is
written to a hidden temporary file beside the target and renamed over it, so an
interrupted run never leaves a half-written image under the final name.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from nst_client.protocol import Image
from nst_core.atomic import atomic_write
from nst_core.errors import ImageError
from nst_core.pillow_modes import has_alpha

_MODE_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
_CHANNELS_MODE = {v: k for k, v in _MODE_CHANNELS.items()}
_NO_ALPHA = {"JPEG", "BMP", "PPM", "MPO", "PCX", "EPS", "PDF"}


def output_format(path: str | Path) -> str:
    """The Pillow format that ``path``'s extension asks for; ``ImageError`` if none can write it."""
    ext = Path(path).suffix.lower()
    fmt = PILImage.registered_extensions().get(ext)
    if fmt is None or fmt not in PILImage.SAVE:
        raise ImageError(
            f"{path}: cannot write images with extension {ext or '(none)'!r}; "
            "use .png, .jpg, .tif or .webp"
        )
    return fmt


def read_image(path: str | Path) -> Image:
    """Read an image file as 8-bit gray/gray+alpha/RGB/RGBA, EXIF orientation applied."""
    path = Path(path)
    try:
        with PILImage.open(path) as pil:
            pil = ImageOps.exif_transpose(pil)
            pil.load()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from None
    if pil.mode.startswith("I"):  # 16/32-bit gray: scale to 8 bits rather than clip
        pil = pil.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if pil.mode not in _MODE_CHANNELS:
        alpha = has_alpha(pil)
        gray = pil.mode in ("1", "I", "I;16", "I;16B", "I;16L", "F")
        mode = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
        pil = pil.convert(mode)
    return Image(pil.width, pil.height, _MODE_CHANNELS[pil.mode], pil.tobytes())


def _to_pil(image: Image) -> PILImage.Image:
    if image.dtype != "u8":
        raise ImageError(f"cannot write a {image.dtype} image (expected 8-bit)")
    return PILImage.frombytes(
        _CHANNELS_MODE[image.channels], (image.width, image.height), bytes(image.data)
    )


def write_image(path: str | Path, image: Image) -> Path:
    """Write atomically; alpha is dropped for formats without it (JPEG, BMP, ...)."""
    path = Path(path)
    fmt = output_format(path)
    pil = _to_pil(image)
    if fmt in _NO_ALPHA and pil.mode in ("LA", "RGBA"):
        pil = pil.convert(pil.mode[:-1])
    try:
        with atomic_write(path) as out:
            pil.save(out, format=fmt)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ImageError(f"{path}: cannot write image ({reason})") from None
    return path
