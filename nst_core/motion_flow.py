"""Optical flow, warping and blending for the temporal carry of :mod:`nst_core.motion`:
OpenCV's DIS flow on small gray copies of the frames, warping by a dense flow, the box
filters that shape the carry's confidence, and the mix of carried and fresh stylisation
that keeps the strokes' fine detail."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

RESTORE_RADII = (1,)


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def fit_size(height: int, width: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


class DisFlow:
    """OpenCV's DIS dense optical flow on small gray images."""

    def __init__(self) -> None:
        import cv2

        # one thread: the flow is small, and OpenCV's idle workers spinning beside
        # torch's would slow the network down on few cores
        cv2.setNumThreads(1)
        # (OpenCV's stubs lack the DIS factory)
        self.dis = cv2.DISOpticalFlow_create(  # pyright: ignore[reportAttributeAccessIssue]
            cv2.DISOPTICAL_FLOW_PRESET_FAST
        )

    def __call__(self, current, previous):  # uint8 [h, w] arrays -> [h, w, 2] float32
        return self.dis.calc(current, previous, None)


def gray_u8(image: torch.Tensor, size: tuple[int, int]):
    small = F.interpolate(image.float(), size=size, mode="area")
    weights = torch.tensor([0.299, 0.587, 0.114], device=small.device).view(1, 3, 1, 1)
    gray = (small * weights).sum(1)[0].mul(255.0).round_().clamp_(0, 255)
    return gray.to("cpu", torch.uint8).numpy()


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image`` sampled at ``x + flow(x)`` (``flow`` ``[1, 2, H, W]`` in pixels, x then y)."""
    _, _, height, width = image.shape
    ys = torch.arange(height, device=image.device, dtype=torch.float32)
    xs = torch.arange(width, device=image.device, dtype=torch.float32)
    gx = (xs.view(1, 1, width) + flow[:, 0]) * (2.0 / width) + (1.0 / width - 1.0)
    gy = (ys.view(1, height, 1) + flow[:, 1]) * (2.0 / height) + (1.0 / height - 1.0)
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)


def inside(flow: torch.Tensor) -> torch.Tensor:
    """1 where ``x + flow(x)`` lies in the picture, else 0: ``[1, 1, H, W]``."""
    _, _, height, width = flow.shape
    ys = torch.arange(height, device=flow.device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=torch.float32).view(1, 1, width)
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    ok = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return ok.unsqueeze(1).float()


@contextlib.contextmanager
def small_work(device: torch.device) -> Iterator[None]:
    """One CPU thread for the many small operations around the network: waking a second
    thread costs more than it saves on maps this size, more so on a busy machine."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pool(x: torch.Tensor, radius: int, erode: bool = False) -> torch.Tensor:
    """Box mean (or, with ``erode``, minimum) over ``2 radius + 1`` pixels, separably."""
    size = 2 * radius + 1
    if erode:
        x = -F.max_pool2d(-x, (1, size), stride=1, padding=(0, radius))
        return -F.max_pool2d(-x, (size, 1), stride=1, padding=(radius, 0))
    x = F.avg_pool2d(x, (1, size), stride=1, padding=(0, radius), count_include_pad=False)
    return F.avg_pool2d(x, (size, 1), stride=1, padding=(radius, 0), count_include_pad=False)


def blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    return pool(pool(x, radius), radius)


def local_energy(detail: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean square of ``detail`` over about ``2 radius`` pixels (computed at a quarter
    of the size: it is smooth)."""
    energy = detail.square().mean(1, keepdim=True)
    height, width = energy.shape[-2:]
    if min(height, width) >= 16:
        small = F.avg_pool2d(energy, 4, ceil_mode=True)
        small = blur(small, max(1, radius // 4))
        return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return blur(energy, radius)


def mix(
    fresh: torch.Tensor, carried: torch.Tensor, weight: torch.Tensor, restore: float
) -> torch.Tensor:
    """``lerp(fresh, carried, weight)``; with ``restore`` > 1, the mix's fine detail
    (what a 3x3 blur removes) is scaled back up, locally, to the energy of the fresh
    stylisation's detail at that scale, by at most ``restore``: averaging strokes that
    differ, and resampling, would otherwise wash them out."""
    mixed = torch.lerp(fresh, carried, weight)
    if restore <= 1.0:
        return mixed
    out = mixed
    for radius in RESTORE_RADII:
        base = blur(out, radius)
        detail, fresh_detail = out - base, fresh - blur(fresh, radius)
        energy = local_energy(detail, 3 * radius + 3)
        target = local_energy(fresh_detail, 3 * radius + 3)
        gain = (target / energy.clamp_min(1e-8)).sqrt_().clamp_(1.0, restore)
        out = base + detail * gain
    return out.clamp_(0.0, 1.0)
