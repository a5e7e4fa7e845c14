"""Pixel buffers and image files to and from tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst_core.errors import ImageError
from nst_core.images import DTYPES, from_pixels, load_image, resize, save_image, to_pixels


def _random_buffer(width: int, height: int, channels: int, dtype: str) -> bytes:
    rng = np.random.default_rng(width * 100 + height * 10 + channels)
    np_dtype, scale = DTYPES[dtype]
    if dtype == "f32":
        return rng.random((height, width, channels), dtype=np.float32).astype(np_dtype).tobytes()
    values = rng.integers(0, int(scale) + 1, (height, width, channels))
    return values.astype(np_dtype).tobytes()


@pytest.mark.parametrize("dtype", ["u8", "u16", "f32"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (2, 7)])
def test_pixels_round_trip(size: tuple[int, int], channels: int, dtype: str) -> None:
    width, height = size
    data = _random_buffer(width, height, channels, dtype)
    rgb, alpha = from_pixels(data, width, height, channels, dtype)
    assert rgb.shape == (1, 3, height, width) and rgb.dtype == torch.float32
    assert (alpha is not None) == (channels in (2, 4))
    if alpha is not None:
        assert alpha.shape == (1, 1, height, width)
    assert to_pixels(rgb, alpha, channels, dtype) == data


def test_gray_is_expanded_and_gray_output_is_luminance() -> None:
    rgb, alpha = from_pixels(bytes([0, 128, 255]), 3, 1, 1)
    assert alpha is None
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert to_pixels(red, None, 1) == bytes([round(0.299 * 255)])


def test_rgb_from_gray_alpha_and_opaque_default() -> None:
    rgb, alpha = from_pixels(bytes([10, 20, 30, 40]), 2, 1, 2)
    assert alpha is not None
    assert to_pixels(rgb, alpha, 4) == bytes([10, 10, 10, 20, 30, 30, 30, 40])
    assert to_pixels(rgb, None, 2) == bytes([10, 255, 30, 255])


def test_to_pixels_clamps_and_rounds() -> None:
    rgb = torch.tensor([-0.5, 0.5 / 255 + 1e-4, 1.7]).view(1, 3, 1, 1)
    assert to_pixels(rgb, None, 3) == bytes([0, 1, 255])
    assert np.frombuffer(to_pixels(rgb, None, 3, "f32"), "<f4").tolist()[::2] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"\0" * 5, 2, 2, 1), "needs 4"),
        ((b"", 0, 1, 3), "must be positive"),
        ((b"", -2, 1, 3), "must be positive"),
        ((b"\0" * 4, 2, 2, 5), "channels"),
        ((b"\0" * 4, 2, 2, 1, "u32"), "pixel type"),
    ],
)
def test_bad_pixel_buffers_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        from_pixels(*args)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_save_and_load_keep_pixels_and_alpha(tmp_path, suffix: str) -> None:
    data = _random_buffer(7, 5, 4, "u8")
    rgb, alpha = from_pixels(data, 7, 5, 4)
    path = save_image(tmp_path / f"out{suffix}", rgb, alpha)
    loaded_rgb, loaded_alpha = load_image(path)
    if suffix == ".webp":  # lossy by default: only check shapes
        assert loaded_rgb.shape == rgb.shape
        return
    assert to_pixels(loaded_rgb, loaded_alpha, 4) == data
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temp file left


def test_save_jpeg_drops_alpha(tmp_path) -> None:
    rgb, alpha = from_pixels(_random_buffer(8, 8, 4, "u8"), 8, 8, 4)
    loaded_rgb, loaded_alpha = load_image(save_image(tmp_path / "x.jpg", rgb, alpha))
    assert loaded_alpha is None and loaded_rgb.shape == (1, 3, 8, 8)


def test_sixteen_bit_gray_png_keeps_precision(tmp_path) -> None:
    from PIL import Image

    values = np.array([[0, 1, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    rgb, _ = load_image(tmp_path / "g16.png")
    assert torch.allclose(rgb[0, 0, 0], torch.tensor(values[0] / 65535.0, dtype=torch.float32))


def test_file_errors_are_plain(tmp_path) -> None:
    with pytest.raises(ImageError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    with pytest.raises(ImageError, match="unknown image format"):
        save_image(tmp_path / "x.nope", torch.zeros(1, 3, 2, 2))
    with pytest.raises(ImageError, match="does not exist"):
        save_image(tmp_path / "no" / "x.png", torch.zeros(1, 3, 2, 2))


def test_resize_is_antialiased_and_exact_size() -> None:
    stripes = torch.zeros(1, 3, 64, 64)
    stripes[..., ::2] = 1.0
    small = resize(stripes, (8, 5))
    assert small.shape == (1, 3, 8, 5)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)  # no aliasing
    assert resize(stripes, (64, 64)) is stripes
    with pytest.raises(ImageError):
        resize(stripes, (0, 4))
