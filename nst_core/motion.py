"""Temporally consistent fast stylisation of frame sequences (video, animation layers).

Applied frame by frame, a fast style network flickers: each frame's InstanceNorm
statistics differ a little, and the network answers small input changes (sensor noise,
sub-pixel motion) with different strokes. :func:`stylize_frames` removes both causes:

1. **Shared normalisation statistics.** Every InstanceNorm layer normalises with a
   running estimate over the clip instead of the frame's own statistics: the pooled mean
   and second moment of the frames so far (a plain average over the first ``memory``
   frames, then an exponential average over about ``memory`` frames), updated layer by
   layer in the same network pass (:data:`nst_core.fast.StatsHook`), so it costs no extra
   pass. With ``stats="clip"`` and a list of frames, the statistics are pooled once over
   up to ``clip_samples`` frames spread over the clip and fixed for all of them. A scene
   cut (the frame's thumbnail differs a lot from the previous one's) restarts the estimate.
2. **Stride-grid alignment.** The network is shift-equivariant only on its 4-pixel
   stride grid, so a camera pan by a few pixels per frame makes it paint different
   strokes each frame. The median of the optical flow gives the camera's motion; the
   frame is shifted by 0-3 pixels (right, down; the pixels that fall off the far edges
   come back as a mirror of the result's edge) so that the content stays where the grid
   saw it at the start of the scene, and the result is shifted back. Free, and nothing is
   resampled. When the camera zooms in (the median of the flow's divergence,
   made exact by matching the frame with the previous one resampled at nine zooms
   nearby: DIS flow underestimates a zoom), the frame is instead shrunk back into the
   geometry of the frame where the zoom began, stylised and carried there, and the
   result is enlarged to the frame and sharpened in proportion to the growth (what the
   enlargement blurs, up to ``SHARPEN`` of a 3x3 unsharp mask at 25 %): the grid sees
   the content where it saw it before, so the strokes grow with the content instead of
   being painted afresh at every sub-pixel step. After 25 % of growth a new reference
   starts. Zooming out keeps the pan's alignment (the reference could not hold the new
   borders).
3. **Temporal carry.** Where the scene did not change, the previous *stylised* frame is
   carried forward: it is warped to the current frame by the dense optical flow of the
   *input* frames (OpenCV's DIS flow, computed at ``flow_side`` pixels at most, bicubic
   warping) and blended with the current frame's stylisation,
   ``out = c * warp(prev_out) + (1 - c) * styled`` with ``c = carry * confidence``. The
   confidence is 0 where the warped previous input does not match the current one
   (occlusions, new content, lighting changes, flow errors), where the flow points
   outside the picture, and after a cut; it is eroded and feathered so carried and fresh
   regions meet softly. Since ``c < 1`` each frame refreshes the strokes a little, so
   errors and resampling blur fade instead of accumulating; and the blend's fine detail
   is scaled back, locally, to the energy of the fresh stylisation's (at most x1.5), so
   averaging strokes that differ does not wash them out.

Without OpenCV (``flow="auto"`` falls back, or ``flow="none"``) there is no alignment and
the carry works with zero flow: static regions are stable, moving ones are stylised per
frame (with shared statistics). Cost per frame on top of the network: one DIS flow on a
small gray image, two warps and a few pooled maps at the network's size
(``VideoStylizer.cost`` measures them; figures in ``docs/performance.md``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nst_core.color import COLOR_MODES, apply_colors, blend
from nst_core.errors import ImageError, ParameterError
from nst_core.fast import (
    DEFAULT_TILE,
    EPS,  # noqa: F401  (motion.EPS: the epsilon of the statistics, as nst_core.fast's)
    MAX_UNTILED_PIXELS,
    MIN_TILE,
    PAD_MULTIPLE,
    FastRunner,
    NormStats,
    runner_for,
    stylize_tiled,
)
from nst_core.images import resize
from nst_core.motion_flow import (
    DisFlow,
    camera_zoom,
    fit_size,
    gray_u8,
    inside,
    mix,
    opencv_available,
    pool,
    refine_zoom,
    small_work,
    warp,
    zoomed,
)
from nst_core.motion_stats import RunningStats, pooled_stats
from nst_core.pipeline import processing_size
from nst_core.progress import CancelToken, Progress, ProgressCallback, check
from nst_core.transformer_net import StyleModel, TransformerNet

FLOW_METHODS = ("auto", "dis", "none")
STATS_MODES = ("frame", "running", "clip")
#: Thumbnail side for the scene-cut test, and the mean absolute difference of two
#: consecutive thumbnails (0..1) above which the frame starts a new scene.
CUT_THUMB = 16
CUT_DIFFERENCE = 0.12
#: The camera zoom: a frame's zoom below ZOOM_NOISE is taken for none; from ZOOM_EPS of
#: zooming in since the reference, frames are stylised in the reference's geometry, until
#: the content has grown MAX_GROWTH-fold (strokes grow with it) and a new reference starts.
ZOOM_NOISE = 1e-3
ZOOM_EPS = 5e-3
MAX_GROWTH = 1.25
#: Unsharp-mask amount for a zoomed-in frame's enlarged result at MAX_GROWTH (less below).
SHARPEN = 0.5


@dataclass(frozen=True)
class Consistency:
    """How :func:`stylize_frames` keeps motion stable (see the module docstring).

    ``stats``: ``"frame"`` (each frame's own statistics, as for pictures), ``"running"``
    (an estimate over the clip so far) or ``"clip"`` (pooled once over the clip; needs a
    sequence of frames, else it acts as ``"running"``). ``memory``: frames the running
    estimate spans. ``carry``: 0..1, how much of the warped previous result is kept where
    the scene did not change (0: off). ``flow``: ``"auto"`` (DIS if OpenCV is installed,
    else none), ``"dis"`` (requires OpenCV) or ``"none"`` (carry only where nothing
    moves). ``threshold``: mean absolute difference (0..1, after a 5x5 blur) between the
    current input and the warped previous one above which a pixel counts as changed.
    ``flow_side``: long side at which the flow is computed.
    """

    stats: str = "running"
    memory: int = 30
    carry: float = 0.9
    flow: str = "auto"
    threshold: float = 0.08
    flow_side: int = 384
    clip_samples: int = 8
    resample: str = "bicubic"
    restore: float = 1.5
    align: bool = True

    def __post_init__(self) -> None:
        if self.stats not in STATS_MODES:
            raise ParameterError(f"consistency stats {self.stats!r}: use one of {STATS_MODES}")
        if self.flow not in FLOW_METHODS:
            raise ParameterError(f"consistency flow {self.flow!r}: use one of {FLOW_METHODS}")
        if not 0.0 <= self.carry < 1.0:
            raise ParameterError(f"consistency carry {self.carry}: must be in 0..1 (below 1)")
        if self.memory < 1 or self.clip_samples < 1 or self.flow_side < 16:
            raise ParameterError("consistency memory, clip_samples >= 1 and flow_side >= 16")
        if not 0.0 < self.threshold <= 1.0:
            raise ParameterError(f"consistency threshold {self.threshold}: must be in (0, 1]")


#: Named settings: ``off`` is plain per-frame stylisation, ``stats`` shares the
#: normalisation statistics only, ``full`` (the default) adds the temporal carry.
PRESETS: dict[str, Consistency] = {
    "off": Consistency(stats="frame", carry=0.0, flow="none"),
    "stats": Consistency(carry=0.0, flow="none"),
    "full": Consistency(),
}


def consistency_of(value: str | Consistency | None) -> Consistency:
    if value is None:
        return PRESETS["full"]
    if isinstance(value, Consistency):
        return value
    if value not in PRESETS:
        raise ParameterError(f"consistency {value!r}: use one of {sorted(PRESETS)}")
    return PRESETS[value]


# --- the stylizer ----------------------------------------------------------------------------


@dataclass
class Cost:
    """Seconds spent, summed over ``frames``: network, flow, and the blending around it."""

    frames: int = 0
    network_s: float = 0.0
    flow_s: float = 0.0
    carry_s: float = 0.0

    def per_frame(self) -> dict[str, float]:
        n = max(1, self.frames)
        return {
            "network_s": self.network_s / n,
            "flow_s": self.flow_s / n,
            "carry_s": self.carry_s / n,
        }


#: (zoom, shift): a picture in a zoomed scene's reference geometry shows at pixel
#: ``c + zoom * (x - c) + shift`` what the frame shows at x; None: the frame's own
Geometry = tuple[float, tuple[float, float]] | None


@dataclass
class _Previous:
    frame: torch.Tensor  # the frame as it came
    content: torch.Tensor  # the frame in ``geometry``, as ``styled``
    styled: torch.Tensor
    gray: object  # numpy uint8 at the flow size, or None (the frame's own geometry)
    thumb: torch.Tensor
    geometry: Geometry = None


@dataclass
class VideoStylizer:
    """Stylises the frames of one clip in order, keeping the state between them.

    :meth:`step` takes a frame at the size the network should see (``[1, 3, H, W]`` in
    [0, 1]) and returns the temporally consistent stylised frame of the same size (no
    colour keeping or blending: those are the caller's, per frame). A frame of another
    size starts a new clip. The daemon keeps one per video a client streams.
    """

    model: StyleModel | TransformerNet
    consistency: Consistency = field(default_factory=Consistency)
    device: str | torch.device | None = None
    tile_size: int | None = None
    cost: Cost = field(default_factory=Cost)

    def __post_init__(self) -> None:
        self.consistency = consistency_of(self.consistency)
        self.runner: FastRunner = runner_for(self.model, self.device)
        flow = self.consistency.flow
        if flow == "dis" and not opencv_available():
            raise ParameterError(
                "optical flow 'dis' needs OpenCV: pip install opencv-python-headless "
                "(or the 'video' extra), or use flow 'none'"
            )
        self._flow = DisFlow() if flow != "none" and opencv_available() else None
        self.stats = RunningStats(self.consistency.memory)
        self.fixed_stats: NormStats | None = None
        self._previous: _Previous | None = None
        self._drift = (0.0, 0.0)  # the content's motion since the scene began (x, y)
        self._zoom = 1.0  # the scene's size now relative to the reference (< 1: zoomed in)

    @property
    def flow_method(self) -> str:
        return "dis" if self._flow is not None else "none"

    def reset(self) -> None:
        """Forget the clip (the next frame is stylised as a first frame)."""
        self._previous = None
        self._drift = (0.0, 0.0)
        self._zoom = 1.0
        self.stats.reset()

    def set_clip_stats(self, frames: Sequence[torch.Tensor]) -> None:
        """Fix the statistics to those pooled over ``frames`` (network-size frames)."""
        samples = [self.runner.run(frame)[1] for frame in frames]
        self.fixed_stats = pooled_stats(samples) if samples else None

    def _network(self, content: torch.Tensor, new_scene: bool) -> torch.Tensor:
        mode = self.consistency.stats
        stats: object = None
        if self.fixed_stats is not None and mode == "clip":
            stats = self.fixed_stats
        elif mode != "frame":
            if new_scene:
                self.stats.reset()
            self.stats.next_frame()
            stats = self.stats
        # the network is shift-equivariant on its 4-pixel stride grid only: keep the
        # content where the grid saw it in the first frame of the scene (or, zooming in,
        # in the reference frame's geometry: shrunk back, so the strokes grow with it)
        pad_x = pad_y = 0
        if self._geometry() is None:
            pad_x, pad_y = (int(-round(d)) % PAD_MULTIPLE for d in self._drift)
        height, width = content.shape[-2:]
        mode_pad = "reflect" if min(height, width) > 2 * PAD_MULTIPLE else "replicate"
        if pad_x or pad_y:
            # shifted, at the frame's own size (one the network does not pad: a width 1-3
            # pixels off a multiple of 4 costs it up to 40 % more); the last pad_x columns
            # and pad_y rows fall off and come back as a mirror of the result's edge
            content = F.pad(content, [pad_x, 0, pad_y, 0], mode=mode_pad)[..., :height, :width]
        if self.tile_size is None and height * width <= MAX_UNTILED_PIXELS:
            styled = self.runner.run(content, stats)[0]  # type: ignore[arg-type]
        elif isinstance(stats, list):
            from nst_core.tiling import tiled

            tile = max(MIN_TILE, self.tile_size or DEFAULT_TILE)
            styled = tiled(lambda t: self.runner.run(t, stats)[0], content, tile, 32)
        else:
            tile = max(MIN_TILE, self.tile_size or DEFAULT_TILE)
            styled = stylize_tiled(self.runner, content, tile, stats_hook=stats)  # type: ignore[arg-type]
        if not (pad_x or pad_y):
            return styled
        return F.pad(styled[..., pad_y:, pad_x:], [0, pad_x, 0, pad_y], mode=mode_pad)

    def _flow_between(
        self, gray, previous_gray, height: int, width: int, device: torch.device
    ) -> torch.Tensor:
        small = torch.from_numpy(self._flow(gray, previous_gray))  # type: ignore[misc]
        fh, fw = small.shape[:2]
        flow = small.permute(2, 0, 1).unsqueeze(0).to(device)
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        flow[:, 0] *= width / fw
        flow[:, 1] *= height / fh
        return flow

    @torch.inference_mode()
    def step(self, content: torch.Tensor) -> torch.Tensor:
        """The stylised ``content`` (the next frame of the clip), consistent with the last."""
        if content.dim() != 4 or content.shape[:2] != (1, 3) or min(content.shape[-2:]) < 1:
            raise ImageError(f"expected an RGB frame [1, 3, H, W], got {list(content.shape)}")
        cons = self.consistency
        started = time.perf_counter()
        content = content.to(self.runner.device, torch.float32)
        previous = self._previous
        if previous is not None and previous.content.shape != content.shape:
            self.reset()
            previous = None
        with small_work(content.device):
            flow, gray, thumb, new_scene = self._motion(content, previous)
            geometry = self._geometry()
            frame = content
            if geometry is not None:  # zooming in: work in the reference's geometry
                zoom, (sx, sy) = geometry
                content = zoomed(content, 1.0 / zoom, (-sx / zoom, -sy / zoom))
        flowed = time.perf_counter()
        styled = self._network(content, new_scene and previous is not None)
        networked = time.perf_counter()
        if cons.carry > 0 and previous is not None and not new_scene:
            with small_work(content.device):
                if flow is not None and (geometry is not None or previous.geometry is not None):
                    flow = reference_flow(flow, previous.geometry, geometry)
                styled = self._carry(content, styled, previous, flow)
        self._previous = _Previous(frame, content, styled, gray, thumb, geometry)
        if geometry is not None:  # back to the frame's own geometry
            with small_work(content.device):
                styled = zoomed(styled, geometry[0], geometry[1], cons.resample)
                if SHARPEN:
                    amount = SHARPEN * (1.0 / geometry[0] - 1.0) / (MAX_GROWTH - 1.0)
                    styled = styled + amount * (styled - pool(styled, 1))
                styled = styled.clamp_(0, 1)
        done = time.perf_counter()
        self.cost.frames += 1
        self.cost.network_s += networked - flowed
        self.cost.flow_s += flowed - started
        self.cost.carry_s += done - networked
        return styled

    def _geometry(self) -> Geometry:
        """The reference geometry while the camera zooms in, else None."""
        if self._zoom >= 1.0 - ZOOM_EPS:
            return None
        return self._zoom, (-self._drift[0], -self._drift[1])

    def _motion(self, content: torch.Tensor, previous: _Previous | None):
        """The flow from this frame back to the previous one (or None), this frame's gray
        copy for the next flow, its thumbnail, and whether it starts a new scene."""
        cons = self.consistency
        height, width = content.shape[-2:]
        thumb = F.adaptive_avg_pool2d(content, CUT_THUMB)
        new_scene = previous is None or float((thumb - previous.thumb).abs().mean()) > (
            CUT_DIFFERENCE
        )
        if new_scene:
            self._drift = (0.0, 0.0)
            self._zoom = 1.0
        temporal = previous is not None and not new_scene
        gray = flow = None
        if self._flow is not None and (cons.carry or cons.align):
            gray = gray_u8(content, fit_size(height, width, cons.flow_side))
            if temporal and previous is not None and previous.gray is not None:
                flow = self._flow_between(gray, previous.gray, height, width, content.device)
        if flow is not None and cons.align:  # the camera's motion
            zoom, dx, dy = camera_zoom(flow)
            if abs(zoom - 1.0) >= ZOOM_NOISE and previous is not None:
                zoom = refine_zoom(content, previous.frame, zoom, (dx, dy))
            if abs(zoom - 1.0) < ZOOM_NOISE:  # a pan, or still: the flow's median
                zoom = 1.0
                dx, dy = (float(v) for v in flow.flatten(2).median(dim=2).values[0])
            before = self._zoom
            self._drift = (self._drift[0] - before * dx, self._drift[1] - before * dy)
            # zooming out keeps the pan's alignment: the reference cannot hold new borders
            self._zoom = min(1.0, before * zoom)
            if self._zoom < 1.0 / MAX_GROWTH:  # strokes grown enough: a new reference
                self._zoom, self._drift = 1.0, (0.0, 0.0)
        return flow, gray, thumb, new_scene

    def _carry(
        self,
        content: torch.Tensor,
        styled: torch.Tensor,
        previous: _Previous,
        flow: torch.Tensor | None,
    ) -> torch.Tensor:
        """``styled`` with the previous result carried forward where the scene holds."""
        cons = self.consistency
        height, width = content.shape[-2:]
        if flow is None:
            flow = torch.zeros(1, 2, height, width, device=content.device)
        warped_in = warp(previous.content, flow)
        change = pool((content - warped_in).abs().mean(1, keepdim=True), 2)
        confidence = ((cons.threshold - change) / (0.5 * cons.threshold)).clamp_(0.0, 1.0)
        confidence = confidence * inside(flow)
        radius = max(1, round(max(height, width) / 256))
        confidence = pool(pool(confidence, radius, erode=True), radius)
        weight = confidence.mul_(cons.carry)
        carried = warp(previous.styled, flow, cons.resample).clamp_(0.0, 1.0)
        return mix(styled, carried, weight, cons.restore)


def reference_flow(flow: torch.Tensor, before: Geometry, now: Geometry) -> torch.Tensor:
    """The frames' backward ``flow`` between pictures held in other geometries: pixel y of
    a picture in ``now`` shows what pixel ``y + result(y)`` of the previous picture (in
    ``before``) showed. Near zero while a camera zoom is followed exactly."""
    _, _, height, width = flow.shape
    (z1, (a1, b1)), (z0, (a0, b0)) = now or (1.0, (0.0, 0.0)), before or (1.0, (0.0, 0.0))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    # y (now) -> x (this frame) -> x + flow(x) (previous frame) -> y' (before)
    frame_x, frame_y = cx + (xs - cx - a1) / z1, cy + (ys - cy - b1) / z1
    to_frame = torch.stack(
        [(frame_x - xs).expand(1, height, width), (frame_y - ys).expand(1, height, width)], 1
    )
    moved = warp(flow, to_frame)
    prev_x = cx + z0 * (frame_x + moved[:, 0] - cx) + a0
    prev_y = cy + z0 * (frame_y + moved[:, 1] - cy) + b0
    return torch.stack([prev_x - xs, prev_y - ys], 1)


def stylize_frames(
    frames: Iterable[torch.Tensor],
    model: StyleModel | TransformerNet,
    *,
    consistency: str | Consistency | None = "full",
    strength: float = 1.0,
    preserve_colors: str | None = None,
    max_size: int | None = None,
    tile_size: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stylizer: VideoStylizer | None = None,
) -> Iterator[torch.Tensor]:
    """Stylise a sequence of frames (each ``[1, 3, H, W]`` in [0, 1]) with temporal
    consistency; yields the stylised frames in order, each of its input's size.

    ``consistency`` is a preset name (``"off"``, ``"stats"``, ``"full"``) or a
    :class:`Consistency`. The network sees each frame at most ``max_size`` on its long
    side (the result is scaled back), then colours are kept (``preserve_colors``) and the
    result is blended with the frame by ``strength``, as :func:`nst_core.fast.stylize_fast`
    does for one picture. ``frames`` may be a generator (a long video is never held in
    memory); with ``stats="clip"`` it must be a sequence. Pass ``stylizer`` to read its
    ``cost`` afterwards.
    """
    cons = consistency_of(consistency)
    if preserve_colors not in COLOR_MODES:
        raise ParameterError(
            f"unknown colour mode {preserve_colors!r}: use none, 'luminance' or 'histogram'"
        )
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength {strength}: must be between 0 and 1")
    if stylizer is None:
        stylizer = VideoStylizer(model, cons, device, tile_size)
    total = len(frames) if isinstance(frames, Sequence) else 0

    def network_size(frame: torch.Tensor) -> torch.Tensor:
        if frame.dim() != 4 or frame.shape[:2] != (1, 3) or min(frame.shape[-2:]) < 1:
            raise ImageError(f"expected an RGB frame [1, 3, H, W], got {list(frame.shape)}")
        height, width = frame.shape[-2:]
        return resize(frame, processing_size(height, width, max_size))

    if cons.stats == "clip" and isinstance(frames, Sequence) and frames:
        count = min(len(frames), cons.clip_samples)
        picks = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(count)})
        stylizer.set_clip_stats([network_size(frames[i]) for i in picks])
    for index, frame in enumerate(frames):
        check(cancel)
        styled = stylizer.step(network_size(frame))
        height, width = frame.shape[-2:]
        styled = resize(styled.to(frame.device), (height, width))
        styled = apply_colors(styled, frame, preserve_colors)
        yield blend(styled, frame, strength)
        if progress is not None:
            progress(Progress(index + 1, total, "frames"))


def describe(consistency: str | Consistency | None = "full") -> str:
    """One line naming the method, for logs and reports."""
    cons = consistency_of(consistency)
    if cons.stats == "frame" and cons.carry == 0:
        return "per-frame"
    parts = [f"{cons.stats} InstanceNorm statistics"]
    if cons.carry:
        flow = cons.flow if cons.flow != "auto" else ("dis" if opencv_available() else "none")
        parts.append(f"carry {cons.carry:g} with {flow} flow")
    return ", ".join(parts)


__all__ = [
    "Consistency",
    "Cost",
    "PRESETS",
    "RunningStats",
    "VideoStylizer",
    "consistency_of",
    "describe",
    "opencv_available",
    "pooled_stats",
    "stylize_frames",
    "warp",
]
