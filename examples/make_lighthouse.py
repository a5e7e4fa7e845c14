"""Render examples/lighthouse.png, the product's own example picture (no third-party image).

A coastal scene with sky, sea, rocks and a lighthouse: enough edges, flat areas and texture
to show what a style does. Run: python examples/make_lighthouse.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 640, 480
rng = np.random.default_rng(7)


def smooth_noise(h: int, w: int, scale: int) -> np.ndarray:
    small = rng.random((h // scale + 2, w // scale + 2)).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


y = np.linspace(0, 1, H, dtype=np.float32)[:, None]
x = np.linspace(0, 1, W, dtype=np.float32)[None, :]
horizon = 0.55
sky = np.stack([0.35 + 0.5 * y, 0.55 + 0.35 * y, 0.95 - 0.1 * y], -1) * np.ones((1, W, 1))
clouds = np.clip(smooth_noise(H, W, 48) * 1.6 - 0.7, 0, 1)[..., None]
sky = sky * (1 - 0.6 * clouds) + 0.97 * 0.6 * clouds
sun = np.exp(-(((x - 0.78) ** 2) + ((y - 0.18) ** 2) * 1.8) / 0.004)[..., None]
sky = np.clip(sky + sun * np.array([1.0, 0.85, 0.5]), 0, 1)
depth = np.clip((y - horizon) / (1 - horizon), 0, 1) * np.ones((1, W), np.float32)
waves = 0.5 + 0.5 * np.sin(x * 90 * (1 + 2 * depth) + smooth_noise(H, W, 16) * 6)
sea = np.stack([0.05 + 0.1 * waves, 0.25 + 0.2 * waves * depth, 0.45 + 0.2 * depth], -1)
scene = np.where((y < horizon)[..., None], sky, sea)

image = Image.fromarray((scene * 255).astype(np.uint8))
draw = ImageDraw.Draw(image)
rocks = [(0, 430), (60, 330), (140, 300), (230, 320), (300, 360), (380, 420), (420, 480), (0, 480)]
draw.polygon(rocks, fill=(72, 62, 55))
for _ in range(60):
    cx, cy = rng.integers(10, 380), rng.integers(320, 470)
    shade = int(rng.integers(40, 110))
    draw.ellipse((cx - 9, cy - 5, cx + 9, cy + 5), fill=(shade, shade - 8, shade - 14))
base, top, cx = 310, 120, 170
for i, y0 in enumerate(range(top, base, 30)):
    y1 = y0 + 30
    w0, w1 = 18 + (y0 - top) * 0.09, 18 + (y1 - top) * 0.09
    colour = (205, 40, 35) if i % 2 else (240, 238, 230)
    draw.polygon([(cx - w0, y0), (cx + w0, y0), (cx + w1, y1), (cx - w1, y1)], fill=colour)
draw.rectangle((cx - 16, top - 34, cx + 16, top), fill=(250, 226, 120))
draw.polygon([(cx - 24, top - 34), (cx + 24, top - 34), (cx, top - 62)], fill=(40, 40, 48))
draw.polygon([(cx + 16, top - 22), (W, top - 70), (W, top + 10)], fill=(255, 244, 190))
image = image.filter(ImageFilter.GaussianBlur(0.6))
image.save(Path(__file__).resolve().parent / "lighthouse.png", optimize=True)
