"""Pixels and files to and from the engine's tensors.

Tensors are float32 ``[1, 3, H, W]`` RGB in ``[0, 1]``; alpha travels separately as
``[1, 1, H, W]``. Raw pixel buffers are interleaved rows (``H x W x channels``) with
channels 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); multi-byte samples are
little-endian.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nst_core.atomic import atomic_write
from nst_core.color import luma
from nst_core.errors import ImageError
from nst_core.pillow_modes import has_alpha

#: numpy sample type and full-scale value of each wire dtype.
DTYPES: dict[str, tuple[np.dtype, float]] = {
    "u8": (np.dtype("u1"), 255.0),
    "u16": (np.dtype("<u2"), 65535.0),
    "f32": (np.dtype("<f4"), 1.0),
}
CHANNELS = (1, 2, 3, 4)


def _check_format(width: int, height: int, channels: int, dtype: str) -> tuple[np.dtype, float]:
    if dtype not in DTYPES:
        raise ImageError(f"unknown pixel type {dtype!r}: use one of {', '.join(DTYPES)}")
    if channels not in CHANNELS:
        raise ImageError(f"{channels} channels: use 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
    if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
        raise ImageError(f"image size {width}x{height}: width and height must be positive")
    return DTYPES[dtype]


def from_pixels(
    data: bytes, width: int, height: int, channels: int, dtype: str = "u8"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode an interleaved pixel buffer into ``(rgb, alpha or None)``; gray becomes RGB."""
    np_dtype, scale = _check_format(width, height, channels, dtype)
    expected = width * height * channels * np_dtype.itemsize
    if len(data) != expected:
        raise ImageError(
            f"pixel data is {len(data)} bytes; a {width}x{height} image with {channels} "
            f"channel(s) of {dtype} needs {expected}"
        )
    array = np.frombuffer(data, dtype=np_dtype).reshape(height, width, channels)
    pixels = torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    pixels = torch.nan_to_num(pixels / scale).clamp_(0.0, 1.0)
    colour_channels = 1 if channels <= 2 else 3
    rgb = pixels[:, :colour_channels].expand(1, 3, height, width).contiguous()
    alpha = pixels[:, colour_channels:].contiguous() if channels in (2, 4) else None
    return rgb, alpha


def _check_rgb(rgb: torch.Tensor) -> None:
    if rgb.dim() != 4 or rgb.shape[0] != 1 or rgb.shape[1] != 3:
        raise ImageError(f"expected an RGB tensor [1, 3, H, W], got {list(rgb.shape)}")


def to_pixels(
    rgb: torch.Tensor, alpha: torch.Tensor | None, channels: int, dtype: str = "u8"
) -> bytes:
    """Encode ``rgb`` (and ``alpha``, opaque when None) as an interleaved pixel buffer.

    Gray output is the luminance; values are clamped to [0, 1] and rounded to nearest.
    """
    _check_rgb(rgb)
    height, width = rgb.shape[-2:]
    np_dtype, scale = _check_format(width, height, channels, dtype)
    rgb = rgb.detach().float().cpu()
    colour = rgb
    if channels <= 2:  # luminance, exact for pixels that are already gray
        gray = rgb.amax(dim=1, keepdim=True) == rgb.amin(dim=1, keepdim=True)
        colour = torch.where(gray, rgb[:, :1], luma(rgb))
    planes = [colour]
    if channels in (2, 4):
        if alpha is None:
            alpha = torch.ones(1, 1, height, width)
        elif alpha.shape != (1, 1, height, width):
            raise ImageError(f"alpha is {list(alpha.shape)}, expected [1, 1, {height}, {width}]")
        planes.append(alpha.detach().float().cpu())
    pixels = torch.cat(planes, dim=1).clamp(0.0, 1.0)[0].permute(1, 2, 0)
    if dtype == "f32":
        return pixels.numpy().astype(np_dtype).tobytes()
    return torch.round(pixels * scale).numpy().astype(np_dtype).tobytes()


def load_image(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read an image file (any format Pillow reads) as ``(rgb, alpha or None)``.

    EXIF orientation is applied; 16-bit grayscale keeps its precision.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such image file") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        gray = np.asarray(image, dtype=np.float32) / (65535.0 if image.mode != "I" else 255.0)
        if image.mode == "I" and gray.max() > 1.0:
            gray = gray * 255.0 / 65535.0
        data = np.clip(gray, 0, 1).astype("<f4").tobytes()
        return from_pixels(data, image.width, image.height, 1, "f32")
    alpha = has_alpha(image)
    image = image.convert("RGBA" if alpha else "RGB")
    channels = 4 if alpha else 3
    return from_pixels(image.tobytes(), image.width, image.height, channels, "u8")


def save_image(path: str | Path, rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Path:
    """Write ``rgb`` (8-bit) atomically: a temporary file in the same folder, then a rename.

    The format follows the suffix; alpha is dropped for formats without it (JPEG).
    """
    from PIL import Image

    _check_rgb(rgb)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image format {path.suffix!r} (use .png, .jpg, .tif …)")
    if fmt in ("JPEG", "BMP", "PPM") or alpha is None:
        mode, channels, alpha = "RGB", 3, None
    else:
        mode, channels = "RGBA", 4
    height, width = rgb.shape[-2:]
    image = Image.frombytes(mode, (width, height), to_pixels(rgb, alpha, channels, "u8"))
    if not path.parent.is_dir():
        raise ImageError(f"{path}: folder {path.parent} does not exist")
    try:
        with atomic_write(path) as out:
            image.save(out, format=fmt)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write image ({exc})") from exc
    return path


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``[1, C, H, W]`` to ``size = (height, width)``, antialiased when shrinking."""
    height, width = size
    if height <= 0 or width <= 0:
        raise ImageError(f"cannot resize to {width}x{height}: sizes must be positive")
    if tuple(image.shape[-2:]) == (height, width):
        return image
    return F.interpolate(
        image, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
