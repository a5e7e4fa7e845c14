"""Generated clips with known motion, and the flicker measure (for the bench and tests).

A clip is made from one picture (a photo, or any ``[1, 3, H, W]`` tensor) by moving a
camera window over it, so the true motion between frames is known exactly and the
flicker of a stylised clip can be measured without estimating flow:

* ``pan``: the window slides by whole pixels per frame (the true warp is exact);
* ``zoom``: the window shrinks around its centre a little each frame (sub-pixel motion);
* ``static``: the same window, with fresh sensor noise in every frame;
* ``object``: a static noisy background with a patch of the picture sliding over it.

:func:`flicker` is the mean absolute temporal difference of an output clip in regions
where the input does not change, and the mean absolute *warped* difference (the previous
output frame moved by the true motion) where it moves, in 0..255 levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KINDS = ("pan", "zoom", "static", "object")


@dataclass
class Clip:
    """Frames ``[1, 3, h, w]`` and, for each frame after the first, the true backward
    flow ``[1, 2, h, w]`` (pixel ``x`` of frame t shows what ``x + flow`` showed in
    frame t-1) and a mask ``[1, 1, h, w]``: 1 where that is known to hold (not occluded,
    not entering the picture). ``moving`` marks where the true flow is not zero."""

    kind: str
    frames: list[torch.Tensor]
    flows: list[torch.Tensor]
    valid: list[torch.Tensor]

    def moving(self, index: int) -> torch.Tensor:
        return (self.flows[index - 1].abs().sum(1, keepdim=True) > 1e-6).float()


def _sample(picture: torch.Tensor, x0: float, y0: float, scale: float, size: tuple[int, int]):
    """The window of ``size`` whose top-left pixel centre is at (x0, y0) of ``picture``,
    one output pixel spanning ``scale`` picture pixels (bilinear)."""
    h, w = size
    ph, pw = picture.shape[-2:]
    xs = x0 + torch.arange(w, dtype=torch.float32) * scale
    ys = y0 + torch.arange(h, dtype=torch.float32) * scale
    gx = (xs + 0.5) * (2.0 / pw) - 1.0
    gy = (ys + 0.5) * (2.0 / ph) - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).unsqueeze(0)
    return F.grid_sample(picture, grid, mode="bilinear", padding_mode="border", align_corners=False)


def make_clip(
    picture: torch.Tensor,
    kind: str,
    size: tuple[int, int] = (96, 128),
    frames: int = 8,
    *,
    speed: int = 2,
    noise: float = 2.0 / 255,
    seed: int = 0,
) -> Clip:
    """A clip of ``frames`` frames of ``size`` (h, w) from ``picture`` ([1, 3, H, W]).

    ``speed``: pixels per frame (pan, object); ``noise``: std of the Gaussian noise
    (static, object: a static shot is never noise-free).
    """
    if kind not in KINDS:
        raise ValueError(f"clip kind {kind!r}: use one of {KINDS}")
    picture = picture.float()
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    flows: list[torch.Tensor] = []
    valid: list[torch.Tensor] = []
    ph, pw = picture.shape[-2:]
    ones = torch.ones(1, 1, h, w)
    if kind == "pan":
        # fit the window plus the path into the picture (scaled up when it is small)
        need_w, need_h = w + speed * (frames - 1), h + (frames - 1) // 2
        scale = min(pw / need_w, ph / need_h, 1.0)
        for t in range(frames):
            out.append(_sample(picture, speed * t * scale, (t // 2) * scale, scale, size))
            if t:
                dy = float(t // 2 - (t - 1) // 2)
                flow = torch.zeros(1, 2, h, w)
                flow[:, 0], flow[:, 1] = float(speed), dy
                mask = ones.clone()
                mask[..., w - speed :] = 0.0
                if dy:
                    mask[..., h - 1 :, :] = 0.0
                flows.append(flow)
                valid.append(mask)
    elif kind == "zoom":
        scale0 = min(ph / h, pw / w)
        if scale0 > 0.9:  # shrink once, antialiased, so that sampling never aliases
            picture = F.interpolate(
                picture,
                scale_factor=0.9 / scale0,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            ph, pw = picture.shape[-2:]
            scale0 = min(ph / h, pw / w)
        rate = 0.985
        cy, cx = (ph - 1) / 2, (pw - 1) / 2
        ys = torch.arange(h, dtype=torch.float32).view(h, 1)
        xs = torch.arange(w, dtype=torch.float32).view(1, w)
        for t in range(frames):
            scale = scale0 * rate**t
            out.append(
                _sample(picture, cx - scale * (w - 1) / 2, cy - scale * (h - 1) / 2, scale, size)
            )
            if t:  # pixel x of frame t shows what (x - c) * rate + c showed in frame t-1
                fx = ((xs - (w - 1) / 2) * rate + (w - 1) / 2) - xs
                fy = ((ys - (h - 1) / 2) * rate + (h - 1) / 2) - ys
                flows.append(torch.stack([fx.expand(h, w), fy.expand(h, w)]).unsqueeze(0))
                valid.append(ones.clone())
    else:
        background = _sample(picture, 0.0, 0.0, min(ph / h, pw / w), size)
        patch_h, patch_w = max(8, h // 3), max(8, w // 4)
        patch = torch.flip(
            _sample(picture, 0.0, 0.0, min(ph / h, pw / w) / 2, (patch_h, patch_w)), dims=[-1, -2]
        )
        top = (h - patch_h) // 2
        previous_box = None
        for t in range(frames):
            frame = background.clone()
            flow = torch.zeros(1, 2, h, w)
            mask = ones.clone()
            if kind == "object":
                left = min(w - patch_w, speed * t + 2)
                frame[..., top : top + patch_h, left : left + patch_w] = patch
                box = (left, left + patch_w)
                if previous_box is not None:
                    step = box[0] - previous_box[0]
                    flow[:, 0, top : top + patch_h, box[0] : box[1]] = -float(step)
                    # the background the patch uncovered: not in the previous frame
                    lo, hi = min(previous_box[0], box[0]), max(previous_box[1], box[1])
                    mask[..., top : top + patch_h, lo:hi] = 0.0
                    mask[..., top : top + patch_h, box[0] : box[1]] = 1.0
                previous_box = box
            frame = frame + noise * torch.randn(frame.shape, generator=gen)
            out.append(frame.clamp(0.0, 1.0))
            if t:
                flows.append(flow)
                valid.append(mask)
    return Clip(kind, out, flows, valid)


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    from nst_core.motion import warp

    return warp(image, flow)


@dataclass(frozen=True)
class Flicker:
    """Mean absolute temporal difference in 0..255 levels: where the input is static,
    and warped by the true motion where it moves (``nan`` when there is no such region)."""

    static: float
    moving: float

    @property
    def overall(self) -> float:
        values = [v for v in (self.static, self.moving) if v == v]
        return sum(values) / len(values) if values else float("nan")


def flicker(clip: Clip, outputs: Sequence[torch.Tensor]) -> Flicker:
    """The flicker of ``outputs`` (one stylised frame per frame of ``clip``)."""
    if len(outputs) != len(clip.frames):
        raise ValueError(f"{len(outputs)} outputs for {len(clip.frames)} frames")
    static_sum = moving_sum = static_n = moving_n = 0.0
    for t in range(1, len(outputs)):
        cur, prev = outputs[t].float().cpu(), outputs[t - 1].float().cpu()
        valid, moving = clip.valid[t - 1], clip.moving(t)
        diff = (cur - _warp(prev, clip.flows[t - 1])).abs().mean(1, keepdim=True)
        still = valid * (1.0 - moving)
        move = valid * moving
        static_sum += float((diff * still).sum())
        static_n += float(still.sum())
        moving_sum += float((diff * move).sum())
        moving_n += float(move.sum())
    nan = float("nan")
    return Flicker(
        255.0 * static_sum / static_n if static_n else nan,
        255.0 * moving_sum / moving_n if moving_n else nan,
    )
