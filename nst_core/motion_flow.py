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


def camera_zoom(flow: torch.Tensor) -> tuple[float, float, float]:
    """The camera's zoom about the frame's centre and its shift in a backward flow
    (``flow`` ``[1, 2, H, W]``: pixel x shows what x + flow showed before): ``(s, dx, dy)``
    with ``x + flow(x) ~ c + s * (x - c) + (dx, dy)``. Medians (of the flow's divergence,
    then of what the zoom leaves), so a moving object does not count as camera motion."""
    fx, fy = flow[0, 0], flow[0, 1]
    height, width = fx.shape
    if height < 3 or width < 3:
        return 1.0, float(fx.median()), float(fy.median())
    divergence = (fx[1:-1, 2:] - fx[1:-1, :-2] + fy[2:, 1:-1] - fy[:-2, 1:-1]) / 4.0
    zoom = 1.0 + float(divergence.median())
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, width)
    dx = float((fx - (zoom - 1.0) * (xs - (width - 1) / 2)).median())
    dy = float((fy - (zoom - 1.0) * (ys - (height - 1) / 2)).median())
    return zoom, dx, dy


def refine_zoom(
    current: torch.Tensor, previous: torch.Tensor, zoom: float, shift: tuple[float, float]
) -> float:
    """``zoom`` made exact by matching the pictures: variational flow (DIS) smooths a
    zoom's divergence away and underestimates it by a fifth or more, and a followed zoom
    must be exact or the reference drifts. The zoom (within 2 % of ``zoom``) whose
    resampling of ``previous`` matches ``current`` best, from a parabola through the
    best of nine tries; both ``[1, C, H, W]``, best at a few hundred pixels."""
    away = 4  # a border where the resampled picture repeats its edges
    inner = (..., slice(away, -away), slice(away, -away))
    step = 0.005
    trials = [zoom + step * k for k in range(-4, 5)]
    errors = [float((zoomed(previous, z, shift) - current)[inner].abs().mean()) for z in trials]
    best = min(range(len(trials)), key=errors.__getitem__)
    if 0 < best < len(trials) - 1:
        left, mid, right = errors[best - 1], errors[best], errors[best + 1]
        curve = left - 2 * mid + right
        if curve > 0:
            return trials[best] + step * 0.5 * (left - right) / curve
    return trials[best]


def zoomed(
    image: torch.Tensor, zoom: float, shift: tuple[float, float], mode: str = "bilinear"
) -> torch.Tensor:
    """``image`` sampled at ``c + zoom * (x - c) + shift`` for every pixel x (c: the
    centre): ``zoom`` < 1 magnifies about the centre, > 1 shrinks (edges repeated)."""
    _, _, height, width = image.shape
    theta = torch.tensor(
        [[[zoom, 0.0, 2.0 * shift[0] / width], [0.0, zoom, 2.0 * shift[1] / height]]],
        device=image.device,
        dtype=image.dtype,
    )
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
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
