"""Deterministic test pictures, written for GIMP to load and known to the tests."""

from __future__ import annotations

from pathlib import Path


def pattern(width: int, height: int, channels: int, seed: int = 0) -> bytes:
    """Deterministic test picture: smooth gradients plus a little texture."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            values = [
                (3 * x + 2 * y + seed) % 256,
                (x * y // 8 + 40) % 256,
                (255 - 2 * x + y) % 256,
                min(255, 40 + 4 * x),
            ]
            if channels in (1, 2):
                values = [values[0], values[3]]
            out += bytes(values[:channels])
    return bytes(out)


INPUTS = {
    "rgb.raw": (64, 48, 3),
    "big.raw": (160, 120, 3),
    "canvas.raw": (120, 90, 3),
    "gray.raw": (64, 48, 1),
    "rgba.raw": (64, 48, 4),
    "huge.raw": (200, 150, 3),
    "style.raw": (40, 40, 3),
    "small.raw": (48, 32, 3),
}


def write_inputs(folder: Path) -> None:
    for seed, (name, (w, h, c)) in enumerate(INPUTS.items()):
        (folder / name).write_bytes(pattern(w, h, c, seed))
    from PIL import Image

    w, h, _ = INPUTS["style.raw"]
    Image.frombytes("RGB", (w, h), input_pixels("style.raw")).save(folder / "style.png")


def input_pixels(name: str) -> bytes:
    w, h, c = INPUTS[name]
    return pattern(w, h, c, list(INPUTS).index(name))
