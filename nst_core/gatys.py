"""Gatys et al. (2016) style transfer: optimise the image's pixels against VGG losses.

The image starts from the content (or noise, or a given image such as a fast model's
output: "refinement") and is optimised coarse to fine: a few scales, each initialised by
upsampling the previous result, so the cheap small scales settle the large structures
before the expensive full-size steps.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

import torch

from nst_core.color import _mean_cov, _sqrtm, apply_colors, blend
from nst_core.errors import ImageError, ParameterError
from nst_core.images import resize
from nst_core.losses import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_WEIGHTS,
    blend_grams,
    content_loss,
    grams,
    style_loss,
    total_variation,
)
from nst_core.precision import loss_network_features
from nst_core.progress import CancelToken, Progress, ProgressCallback, StepClock, check
from nst_core.vgg import VGGFeatures

StyleTargets = dict[str, torch.Tensor]

# Content-to-style balance at style_strength 1.0 (the losses are normalised, see losses.py).
STYLE_WEIGHT = 2.0
CONTENT_WEIGHT = 1.0
LBFGS_MEMORY = 1 << 30
MIN_SCALE_SIDE = 64  # coarser scales than this are skipped: too little left for relu5_1

# Today's schedules, from a start in the style's colours (free: the colours need no
# steps). Moving steps to the coarse scales saves little at equal loss (the fine texture
# that relu1_1-relu2_1 measure is made at full size), and leaving relu5_1 out at full
# size (``fine_skip``) triples the style loss: docs/performance.md has the figures.
# Balanced: 260 steps at half and full size reach a lower loss than 300 at each of three
# scales, in 90 instead of 117 units (a quarter-size scale does not pay at 512 px).
QUALITY_PRESETS: dict[str, dict[str, object]] = {
    "draft": {"iterations": 100, "scales": (0.5, 1.0), "start_colors": "style"},
    "balanced": {"iterations": 260, "scales": (0.5, 1.0), "start_colors": "style"},
    "high": {"iterations": 800, "scales": (0.25, 0.5, 1.0), "start_colors": "style"},
}


@dataclass
class GatysParams:
    """Settings of one Gatys run.

    ``iterations`` counts full-size steps; each coarser scale in ``scales`` runs
    ``coarse_fraction * iterations`` steps (they are 4x, 16x... cheaper); a tuple gives
    one fraction per coarser scale, coarsest first.
    ``start_colors="style"`` recolours the content start so that its colour mean and
    covariance are the style's before optimising (the colours are settled for free).
    ``fine_skip`` names style layers left out at full size when there are coarser scales
    (their large structures are settled there); the final image is still judged by all.
    ``style_strength`` scales the style term against the content term: 1.0 is the
    balanced default, 2.0 twice as much style, 0.5 half.
    ``style_scale`` is the style image's long side relative to the content's.
    """

    iterations: int = 300
    style_strength: float = 1.0
    optimizer: str = "lbfgs"  # "lbfgs" | "adam"
    init: str | torch.Tensor = "content"  # "content" | "noise" | image [1, 3, H, W]
    scales: tuple[float, ...] = (0.25, 0.5, 1.0)
    coarse_fraction: float | tuple[float, ...] = 1.0
    style_scale: float = 1.0
    content_layer: str = GATYS_CONTENT_LAYER
    style_weights: dict[str, float] = field(default_factory=lambda: dict(GATYS_STYLE_WEIGHTS))
    tv_weight: float = 0.0
    preserve_colors: str | None = None  # None | "luminance" | "histogram"
    seed: int = 0
    preview_every: int = 0  # 0: no previews
    preview_size: int = 256
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    lbfgs_history: int = 50
    lbfgs_line_search: str | None = None  # None | "strong_wolfe"
    start_colors: str | None = None  # None | "style"
    fine_skip: tuple[str, ...] = ()

    @classmethod
    def preset(cls, quality: str = "balanced", **overrides: object) -> GatysParams:
        if quality not in QUALITY_PRESETS:
            raise ParameterError(
                f"unknown quality {quality!r}; use one of {', '.join(QUALITY_PRESETS)}"
            )
        return cls(**{**QUALITY_PRESETS[quality], **overrides})  # type: ignore[arg-type]

    def validate(self) -> GatysParams:
        if self.iterations < 1:
            raise ParameterError(f"iterations must be at least 1, not {self.iterations}")
        if not self.style_strength > 0:
            raise ParameterError(f"style_strength must be positive, not {self.style_strength}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ParameterError(f"optimizer must be 'lbfgs' or 'adam', not {self.optimizer!r}")
        if isinstance(self.init, str) and self.init not in ("content", "noise"):
            raise ParameterError(f"init must be 'content', 'noise' or an image, not {self.init!r}")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ParameterError(f"scales must be in (0, 1], got {self.scales}")
        if not 0.05 <= self.style_scale <= 4:
            raise ParameterError(f"style_scale must be in [0.05, 4], not {self.style_scale}")
        if self.preserve_colors not in (None, "luminance", "histogram"):
            raise ParameterError(
                f"preserve_colors must be None, 'luminance' or 'histogram', "
                f"not {self.preserve_colors!r}"
            )
        if not self.style_weights or any(w < 0 for w in self.style_weights.values()):
            raise ParameterError("style_weights needs at least one layer, weights >= 0")
        fractions = self.coarse_fraction
        if isinstance(fractions, tuple):
            if not fractions or any(f < 0 for f in fractions):
                raise ParameterError("coarse_fraction must be >= 0 (one per coarser scale)")
        elif fractions < 0:
            raise ParameterError("coarse_fraction must be >= 0")
        if self.tv_weight < 0:
            raise ParameterError("tv_weight must be >= 0")
        if self.lbfgs_line_search not in (None, "strong_wolfe"):
            raise ParameterError(
                f"lbfgs_line_search must be None or 'strong_wolfe', not {self.lbfgs_line_search!r}"
            )
        if self.start_colors not in (None, "style"):
            raise ParameterError(f"start_colors must be None or 'style', not {self.start_colors!r}")
        return self


def scale_sizes(height: int, width: int, scales: Sequence[float]) -> list[tuple[int, int]]:
    """Working sizes coarse to fine, ending at full size; tiny scales are skipped."""
    return [size for size, _ in _sized_scales(height, width, scales)]


def _sized_scales(
    height: int, width: int, scales: Sequence[float]
) -> list[tuple[tuple[int, int], int]]:
    """``(size, index of the scale in sorted order)`` coarse to fine, ending at full size."""
    ordered = sorted(set(scales) - {1.0})
    sizes: list[tuple[tuple[int, int], int]] = []
    for i, s in enumerate(ordered):
        size = (max(1, round(height * s)), max(1, round(width * s)))
        if min(size) < MIN_SCALE_SIDE or size == (height, width):
            continue
        if size not in [known for known, _ in sizes]:
            sizes.append((size, i))
    return [*sizes, ((height, width), len(ordered))]


def schedule(height: int, width: int, params: GatysParams) -> list[tuple[tuple[int, int], int]]:
    """``[(working size, steps), ...]`` coarse to fine for a ``height`` x ``width`` image."""
    sized = _sized_scales(height, width, params.scales)
    coarse = len(sorted(set(params.scales) - {1.0}))
    fractions = params.coarse_fraction
    if not isinstance(fractions, tuple):
        fractions = (fractions,) * coarse
    elif len(fractions) != coarse:
        raise ParameterError(
            f"coarse_fraction has {len(fractions)} values for {coarse} coarser scale(s)"
        )
    plan = []
    for size, i in sized[:-1]:
        if fractions[i] > 0:
            plan.append((size, max(1, round(params.iterations * fractions[i]))))
    return [*plan, (sized[-1][0], params.iterations)]


def min_side(vgg: VGGFeatures, layers: Sequence[str]) -> int:
    """The smallest image side that reaches the deepest of ``layers`` (2 ** pools before it)."""
    depth = max(vgg.names.index(name) for name in layers)
    return 2 ** sum(1 for name in vgg.names[:depth] if name.startswith("pool"))


def stage_name(index: int, count: int) -> str:
    """What a scale of a coarse-to-fine run does, in plain words."""
    if count == 1:
        return "painting"
    if index == 0:
        return "rough layout"
    return "details" if index == count - 1 else "refining"


def style_targets(
    vgg: VGGFeatures,
    styles: Sequence[tuple[torch.Tensor, float]],
    params: GatysParams,
    size: int,
) -> StyleTargets:
    """Blended style Gram matrices for a content working size whose long side is ``size``.

    Each style image is resized so that its long side is ``style_scale * size``. The
    result depends only on the styles, their weights, ``style_scale``, the style layers,
    ``size`` and the network: cache it under ``style_cache_key`` to skip recomputation.
    """
    device = vgg.mean.device
    layers = list(params.style_weights)
    per_style = []
    with torch.no_grad():
        for image, weight in styles:
            h, w = image.shape[-2:]
            long_side = max(16, round(params.style_scale * size))
            factor = long_side / max(h, w)
            target_size = (max(16, round(h * factor)), max(16, round(w * factor)))
            feats = loss_network_features(vgg, resize(image.to(device), target_size), layers)
            per_style.append((grams(feats, layers), float(weight)))
    return blend_grams(per_style)


def style_cache_key(
    vgg: VGGFeatures, styles: Sequence[tuple[torch.Tensor, float]], params: GatysParams
) -> str:
    """A key for the ``targets`` cache of ``stylize_gatys``: styles, weights and settings."""
    h = hashlib.sha256()
    for image, weight in styles:
        h.update(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        h.update(repr((tuple(image.shape), float(weight))).encode())
    h.update(repr((vgg.arch, vgg.pooling, params.style_scale, params.style_weights)).encode())
    return h.hexdigest()


def _check_inputs(
    content: torch.Tensor, styles: Sequence[tuple[torch.Tensor, float]], mask: torch.Tensor | None
) -> None:
    if content.dim() != 4 or content.shape[:2] != (1, 3):
        raise ImageError(f"content must be an RGB tensor [1, 3, H, W], got {list(content.shape)}")
    if not styles:
        raise ParameterError("Gatys needs at least one style image")
    for image, weight in styles:
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ImageError(f"style must be an RGB tensor [1, 3, H, W], got {list(image.shape)}")
        if weight < 0:
            raise ParameterError(f"style weights must be >= 0, got {weight}")
    if sum(w for _, w in styles) <= 0:
        raise ParameterError("at least one style needs a positive weight")
    if mask is not None and mask.shape[-2:] != content.shape[-2:]:
        raise ImageError(
            f"mask size {list(mask.shape[-2:])} differs from the image {list(content.shape[-2:])}"
        )


def _initial_image(init: str | torch.Tensor, content: torch.Tensor, seed: int) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        if init.dim() != 4 or init.shape[:2] != (1, 3):
            raise ImageError(f"init must be an RGB tensor [1, 3, H, W], got {list(init.shape)}")
        height, width = content.shape[-2:]
        return resize(init.to(content), (height, width)).clamp(0, 1)
    if init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=gen).to(content)
    return content.clone()


def _preview(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    factor = min(1.0, size / max(h, w))
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    return resize(x.detach().clamp(0, 1), small).cpu()


def _lbfgs_history(wanted: int, numel: int) -> int:
    """L-BFGS keeps 2 image-sized vectors per history entry: cap them at ~1 GiB."""
    return max(5, min(wanted, LBFGS_MEMORY // (2 * 4 * numel)))


def _style_colours(image: torch.Tensor, styles: Sequence[tuple[torch.Tensor, float]]):
    """``image`` recoloured to the colour mean and covariance of the weighted styles."""
    total = sum(w for _, w in styles)
    mean = torch.zeros(3, 1, dtype=torch.float64, device=image.device)
    second = torch.zeros(3, 3, dtype=torch.float64, device=image.device)
    for style, weight in styles:
        mu, cov = _mean_cov(style.to(image.device))
        mean += weight / total * mu
        second += weight / total * (cov + mu @ mu.T)
    cov_r = second - mean @ mean.T
    mu_s, cov_s = _mean_cov(image)
    transform = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    pixels = image.reshape(3, -1).double()
    matched = transform @ (pixels - mu_s) + mean
    return matched.to(image.dtype).reshape(image.shape).clamp(0.0, 1.0)


def _cost_clock(device: torch.device) -> float:
    """CPU time on a CPU; on a GPU, wall time after the queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


class _Run:
    """One optimisation at one working size."""

    def __init__(
        self,
        vgg: VGGFeatures,
        content: torch.Tensor,
        targets: StyleTargets,
        params: GatysParams,
        skip: Sequence[str] = (),
    ) -> None:
        self.vgg = vgg
        self.params = params
        weights = {k: w for k, w in params.style_weights.items() if k not in skip and w}
        if not weights:
            weights = dict(params.style_weights)
        self.style_weights = weights
        self.layers = [params.content_layer, *weights]
        layer = params.content_layer
        with torch.no_grad():
            self.content_target = loss_network_features(vgg, content, [layer])[layer]
        self.targets = targets
        # left-out layers keep the others' weights as they were (style_loss normalises)
        kept = sum(weights.values()) / sum(params.style_weights.values())
        self.style_weight = STYLE_WEIGHT * params.style_strength * kept
        self.losses: dict[str, float] = {}

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        feats = loss_network_features(self.vgg, x, self.layers)
        lc = content_loss(feats[p.content_layer], self.content_target)
        ls = style_loss(grams(feats, self.style_weights), self.targets, self.style_weights)
        total = CONTENT_WEIGHT * lc + self.style_weight * ls
        self.losses = {"content": lc.item(), "style": ls.item()}
        if p.tv_weight:
            ltv = total_variation(x)
            total = total + p.tv_weight * ltv
            self.losses["tv"] = ltv.item()
        self.losses["total"] = total.item()
        return total

    def optimise(self, x0: torch.Tensor, steps: int, on_step: Callable[[torch.Tensor], None]):
        p = self.params
        x = x0.detach().clone().requires_grad_(True)
        if p.optimizer == "lbfgs":
            # one iteration per step() call; the quasi-Newton history persists between calls
            opt: torch.optim.Optimizer = torch.optim.LBFGS(
                [x],
                lr=1.0,
                max_iter=1,
                history_size=_lbfgs_history(p.lbfgs_history, x.numel()),
                tolerance_grad=0.0,
                tolerance_change=0.0,
                line_search_fn=p.lbfgs_line_search,
            )
        else:
            opt = torch.optim.Adam([x], lr=p.learning_rate)

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = self.loss(x)
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
            with torch.no_grad():  # projected: the optimiser works on the image a user gets
                x.clamp_(0, 1)
            on_step(x)
        return x.detach()


def stylize_gatys(
    content: torch.Tensor,
    styles: Sequence[tuple[torch.Tensor, float]],
    vgg: VGGFeatures,
    params: GatysParams | None = None,
    *,
    mask: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    targets: MutableMapping[int, StyleTargets] | None = None,
) -> torch.Tensor:
    """Stylise ``content`` ([1, 3, H, W] in [0, 1]) with ``styles = [(image, weight), ...]``.

    ``init`` (an image) overrides ``params.init``. ``mask`` ([1, 1, H, W]) keeps the content
    where it is 0. ``targets`` is an optional cache of style Gram matrices keyed by working
    long side; it is read and filled in (see ``style_targets``/``style_cache_key``).
    Pictures smaller than the network needs (16 px for relu5_1; a small selection) are
    stretched up to that for the optimisation and the result scaled back.
    Progress: one step count for the whole job, stages in plain words (``stage_name``),
    and the seconds left (``Progress.eta_s``).
    Returns the stylised image on the CPU.
    """
    params = (params or GatysParams()).validate()
    _check_inputs(content, styles, mask)
    used = [params.content_layer, *params.style_weights]
    missing = set(used) - set(vgg.names)
    if missing:
        raise ParameterError(f"the VGG network was not built with layers {sorted(missing)}")
    device = vgg.mean.device
    original = content = content.to(device, torch.float32)
    height, width = content.shape[-2:]
    least = min_side(vgg, used)
    work = (max(height, least), max(width, least))
    content = resize(content, work)
    plan = schedule(*work, params)
    total = sum(n for _, n in plan)
    targets = {} if targets is None else targets

    # set-up: style targets and content features of every scale; the CPU time of one
    # loss evaluation with its gradient at each size (CPU time: not inflated when other
    # programs take the CPU away) is the relative cost of a step there, for the time
    # left (a forward pass alone does not scale like a step: the layouts and the Gram
    # matrices' share of the work change with the size)
    runs: list[_Run] = []
    costs: list[float] = []
    for i, (size, n) in enumerate(plan):
        check(cancel)
        long_side = max(size)
        if long_side not in targets:
            targets[long_side] = style_targets(vgg, styles, params, long_side)
        skip = params.fine_skip if len(plan) > 1 and i == len(plan) - 1 else ()
        at_size = resize(content, size)
        run = _Run(vgg, at_size, targets[long_side], params, skip)
        probe = at_size.clone().requires_grad_(True)
        started = _cost_clock(device)
        run.loss(probe).backward()
        costs += [max(_cost_clock(device) - started, 1e-6)] * n
        runs.append(run)
    clock = StepClock(costs)

    start_from = params.init if init is None else init
    x = _initial_image(start_from, content, params.seed)
    from_content = isinstance(start_from, str) and start_from == "content"
    if from_content and params.start_colors == "style":
        x = _style_colours(x, styles)
    detail = x if from_content else content  # what upsampling blurs is restored from
    keep_detail = not (isinstance(start_from, str) and start_from == "noise")
    done = 0
    previous: tuple[int, int] | None = None
    clock.restart()
    for i, ((size, n), run) in enumerate(zip(plan, runs, strict=True)):
        check(cancel)
        stage = stage_name(i, len(plan))

        def on_step(xi: torch.Tensor, run: _Run = run, stage: str = stage) -> None:
            nonlocal done
            done += 1
            eta = clock.step()
            check(cancel)
            if progress is None:
                return
            preview = None
            if params.preview_every and (done % params.preview_every == 0 or done == total):
                preview = _preview(xi, params.preview_size)
            progress(Progress(done, total, stage, dict(run.losses), preview, eta))

        start = resize(x, size)
        if previous is not None and keep_detail:
            # upsampling blurs: put back the content detail the coarser scale could not hold
            start = start + resize(detail, size) - resize(resize(detail, previous), size)
        x = run.optimise(start, n, on_step)
        previous = size

    result = resize(x, (height, width)).clamp(0, 1)
    result = apply_colors(result, original, params.preserve_colors)
    if mask is not None:
        result = blend(result, original, 1.0, mask.to(device))
    return result.cpu()


__all__ = [
    "GatysParams",
    "QUALITY_PRESETS",
    "StyleTargets",
    "min_side",
    "scale_sizes",
    "schedule",
    "stage_name",
    "stylize_gatys",
    "style_cache_key",
    "style_targets",
]
