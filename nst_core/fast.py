"""The fast method (Johnson, Alahi & Fei-Fei 2016): one pass of a trained TransformerNet.

:class:`FastRunner` is an inference-only re-implementation of ``TransformerNet.forward``
with the same weights and the same result (up to float rounding), built for speed:

* channels-last tensors throughout, so oneDNN convolutions need no layout reorders;
* InstanceNorm as a per-channel batch norm of the single image (channels-last native),
  returning its statistics so they can be recorded and reused;
* each "nearest x2 upsample, reflection pad 1, 3x3 conv" is rewritten exactly as one
  2x2 convolution at the low resolution with 4 output phases (sub-pixel convolution):
  16 instead of 36 multiply-adds per low-resolution pixel and channel pair;
* on CPU, the residual blocks' 3x3 convolutions (most of the work) use Winograd's
  F(4x4, 3x3) (:mod:`nst_core.winograd`) at ``WINOGRAD_MIN_CHANNELS`` or more (a lite
  network's narrower blocks run faster without), and the last 9x9 convolution (3 output
  channels, which oneDNN computes slowly) runs on 2x2 pixel phases (:func:`_phase_kernel`).

Large images are cut into tiles. InstanceNorm statistics of a tile differ from those of
the whole image, which shows as seams; so the statistics are recorded once on the whole
image (downscaled when huge) and every tile is normalised with those fixed statistics.

Alpha is not the network's business: callers pass RGB only and re-attach their alpha
unchanged, since the result always has exactly the input's size.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nst_core.color import COLOR_MODES, apply_colors, blend
from nst_core.devices import release_memory, resolve_device
from nst_core.errors import ImageError, OutOfMemoryError, ParameterError
from nst_core.images import resize
from nst_core.memory import is_out_of_memory
from nst_core.progress import CancelToken, Progress, ProgressCallback, check
from nst_core.tiling import tiled
from nst_core.transformer_net import StyleModel, TransformerNet
from nst_core.winograd import conv3x3, transform_kernel

#: Network input sides must be multiples of this (two stride-2 convolutions) and at least
#: ``MIN_SIDE`` (the 9x9 reflection padding needs more than 4 pixels).
PAD_MULTIPLE = 4
MIN_SIDE = 16
#: Images with more pixels than this are tiled even when memory would suffice (CPU RAM).
MAX_UNTILED_PIXELS = 2048 * 2048
DEFAULT_TILE = 1024
MIN_TILE = 256
#: Context around each tile (cropped off after): the network's receptive-field radius
#: (~48 px), so that a tile's result equals that part of an untiled run. Plus a small
#: feathered overlap to hide any remaining difference.
TILE_MARGIN = 48
TILE_OVERLAP = 32
#: Long side of the (downscaled) whole image whose InstanceNorm statistics all tiles share.
STATS_SIDE = 1024
EPS = 1e-5  # nn.InstanceNorm2d's default
#: Residual blocks narrower than this use oneDNN's convolution rather than Winograd's.
WINOGRAD_MIN_CHANNELS = 128

#: (mean, inverse std) of each InstanceNorm layer, in network order.
NormStats = list[tuple[torch.Tensor, torch.Tensor]]
#: Called for each InstanceNorm layer with (layer index, the image's own mean, inverse std);
#: returns the (mean, inverse std) to normalise with instead (e.g. a running estimate over
#: the frames of a video, :mod:`nst_core.motion`), or ``None`` to keep the image's own.
StatsHook = Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]

_UPSAMPLE_TAPS = (  # rows: the 2 low-resolution taps of output phase 0 and 1
    torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]),
    torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
)
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _subpixel_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, Ci, 3, 3]`` of an upsample-x2 conv as ``[4 Co, Ci, 2, 2]`` phase kernels.

    After nearest upsampling, reflection padding by one equals replicate padding of the
    low-resolution input, and output row ``2i`` sees input rows ``(i-1, i, i)`` while
    row ``2i+1`` sees ``(i, i, i+1)``: the 3 taps collapse into 2.
    """
    weight = weight.double()
    kernels = [
        torch.einsum(
            "ry,oiyx,cx->oirc", _UPSAMPLE_TAPS[a].double(), weight, _UPSAMPLE_TAPS[b].double()
        )
        for a, b in _PHASES
    ]
    return torch.cat(kernels).float()


def _phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, Ci, 9, 9]`` (stride 1) as ``[4 Co, 4 Ci, 5, 5]`` on 2x2 pixel phases.

    Output pixel ``(2i + a, 2j + b)`` takes input pixels ``2i + a + ky``: with the input
    and output split into their four 2x2 phases (``pixel_unshuffle``), that is a 5x5
    convolution at half the resolution. Same multiply-adds, but 4x the channels: oneDNN
    computes the 3-channel output layer about twice as fast this way.
    """
    co, ci, k, _ = weight.shape
    taps = (k + 1) // 2
    phases = torch.zeros(co, 2, 2, ci, 2, 2, taps, taps, dtype=torch.float64)
    for ay, ax, by, bx in itertools.product(range(2), repeat=4):
        for dy, dx in itertools.product(range(taps), repeat=2):
            ky, kx = 2 * dy + by - ay, 2 * dx + bx - ax
            if 0 <= ky < k and 0 <= kx < k:
                phases[:, ay, ax, :, by, bx, dy, dx] = weight[:, :, ky, kx].double()
    return phases.reshape(4 * co, 4 * ci, taps, taps).float()


class FastRunner:
    """A style network prepared for fast inference on one device; keep it resident."""

    def __init__(
        self, model: StyleModel | TransformerNet, device: str | torch.device | None = None
    ):
        net = model.net if isinstance(model, StyleModel) else model
        self.device = resolve_device(device)
        cl = torch.channels_last
        params = {}
        for name, value in net.state_dict().items():
            value = value.detach().to(self.device, torch.float32)
            params[name] = value.contiguous(memory_format=cl) if value.dim() == 4 else value
        for name in ("deconv1", "deconv2"):
            weight, bias = net.state_dict()[f"{name}.conv2d.weight"], params[f"{name}.conv2d.bias"]
            kernel = _subpixel_kernel(weight).to(self.device)
            params[f"{name}.subpixel.weight"] = kernel.contiguous(memory_format=cl)
            params[f"{name}.subpixel.bias"] = bias.repeat(4)
        self.params = params
        self.blocks = net.blocks
        cuda = self.device.type == "cuda"
        on_cpu = self.device.type == "cpu"  # GPUs have their own Winograd (cuDNN)
        if on_cpu:  # the 3-channel output layer on 2x2 phases (cuDNN needs no help)
            kernel = _phase_kernel(net.state_dict()["deconv3.conv2d.weight"])
            params["deconv3.phase.weight"] = kernel.contiguous(memory_format=cl)
            params["deconv3.phase.bias"] = params["deconv3.conv2d.bias"].repeat_interleave(4)
        self.winograd = {
            name.removesuffix(".conv2d.weight"): transform_kernel(value)
            for name, value in params.items()
            if on_cpu
            and name.startswith("res")
            and name.endswith(".conv2d.weight")
            and value.shape[0] >= WINOGRAD_MIN_CHANNELS
        }
        self.autocast_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        )

    # -- layers ---------------------------------------------------------------------------

    def _conv(self, name: str, x: torch.Tensor, kernel: int, stride: int = 1) -> torch.Tensor:
        x = F.pad(x, [kernel // 2] * 4, mode="reflect")
        p = self.params
        if name in self.winograd:
            return conv3x3(x, self.winograd[name], p[f"{name}.conv2d.bias"])
        return F.conv2d(x, p[f"{name}.conv2d.weight"], p[f"{name}.conv2d.bias"], stride)

    def _output_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The last 9x9 convolution, on 2x2 pixel phases where prepared (CPU)."""
        p = self.params
        if "deconv3.phase.weight" not in p:
            return self._conv("deconv3", x, 9)
        x = F.pixel_unshuffle(F.pad(x, [4, 4, 4, 4], mode="reflect"), 2)
        y = F.conv2d(x, p["deconv3.phase.weight"], p["deconv3.phase.bias"])
        return F.pixel_shuffle(y, 2)

    def _upsample_conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        p = self.params
        out = F.conv2d(
            F.pad(x, [1, 1, 1, 1], mode="replicate"),
            p[f"{name}.subpixel.weight"],
            p[f"{name}.subpixel.bias"],
        )
        channels = out.shape[1] // 4
        y = torch.empty(
            n,
            channels,
            2 * h,
            2 * w,
            device=x.device,
            dtype=out.dtype,
            memory_format=torch.channels_last,
        )
        for k, (a, b) in enumerate(_PHASES):
            y[:, :, a::2, b::2] = out[:, k * channels : (k + 1) * channels, a : a + h, b : b + w]
        return y

    def _norm(
        self,
        name: str,
        x: torch.Tensor,
        fixed: tuple[torch.Tensor, torch.Tensor] | None,
        recorded: NormStats,
        relu: bool = True,
    ) -> torch.Tensor:
        weight, bias = self.params[f"{name}.weight"], self.params[f"{name}.bias"]
        if fixed is not None:
            mean, invstd = fixed
            scale = weight * invstd
            shift = bias - mean * scale
            y = torch.addcmul(
                shift.view(1, -1, 1, 1).to(x.dtype), x, scale.view(1, -1, 1, 1).to(x.dtype)
            )
        else:  # batch norm of a batch of one image == instance norm
            y, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, EPS)
            recorded.append((mean.float(), invstd.float()))
        return y.relu_() if relu else y

    def _forward(
        self, x: torch.Tensor, fixed: NormStats | StatsHook | None
    ) -> tuple[torch.Tensor, NormStats]:
        recorded: NormStats = []
        if callable(fixed):
            hook, fixed = fixed, None

            def norm(name: str, y: torch.Tensor, relu: bool = True) -> torch.Tensor:
                out = self._norm(name, y, None, recorded, relu=False)
                stats = hook(len(recorded) - 1, *recorded[-1])
                if stats is not None:  # normalise again, with the statistics given back
                    recorded[-1] = stats
                    out = self._norm(name, y, stats, recorded, relu=False)
                return out.relu_() if relu else out

        else:
            given = iter(fixed) if fixed is not None else None

            def norm(name: str, y: torch.Tensor, relu: bool = True) -> torch.Tensor:
                stats = next(given) if given is not None else None
                return self._norm(name, y, stats, recorded, relu)

        y = norm("in1", self._conv("conv1", x, 9))
        y = norm("in2", self._conv("conv2", y, 3, 2))
        y = norm("in3", self._conv("conv3", y, 3, 2))
        for i in range(1, self.blocks + 1):
            block = f"res{i}."
            z = norm(block + "in1", self._conv(block + "conv1", y, 3))
            y = y + norm(block + "in2", self._conv(block + "conv2", z, 3), relu=False)
        y = norm("in4", self._upsample_conv("deconv1", y))
        y = norm("in5", self._upsample_conv("deconv2", y))
        return self._output_conv(y), fixed if fixed is not None else recorded

    # -- public ---------------------------------------------------------------------------

    @torch.inference_mode()
    def run(
        self, image: torch.Tensor, stats: NormStats | StatsHook | None = None
    ) -> tuple[torch.Tensor, NormStats]:
        """Stylise ``[1, 3, H, W]`` in [0, 1] (any size); returns the result on ``image``'s
        device and the InstanceNorm statistics used (the given ones, or the image's own,
        or those a :data:`StatsHook` chose layer by layer)."""
        height, width = image.shape[-2:]
        x = _pad_to_network_size(image.to(self.device, torch.float32) * 255.0)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.bfloat16,
            enabled=self.autocast_dtype is not None,
        ):
            y, used = self._forward(x, stats)
        y = (y[..., :height, :width].float() / 255.0).clamp_(0.0, 1.0)
        return y.to(image.device).contiguous(), used

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.run(image)[0]


def _pad_to_network_size(x: torch.Tensor) -> torch.Tensor:
    """Pad right and bottom to a multiple of 4 (at least ``MIN_SIDE``): reflection where
    the image is large enough, else edge replication."""
    height, width = x.shape[-2:]

    def target(side: int) -> int:
        return max(MIN_SIDE, -(-side // PAD_MULTIPLE) * PAD_MULTIPLE)

    pad_h, pad_w = target(height) - height, target(width) - width
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, [0, pad_w, 0, pad_h], mode=mode)


_RUNNERS: weakref.WeakKeyDictionary[TransformerNet, dict[torch.device, FastRunner]] = (
    weakref.WeakKeyDictionary()
)


def runner_for(
    model: StyleModel | TransformerNet, device: str | torch.device | None = None
) -> FastRunner:
    """The cached :class:`FastRunner` of a network on a device (lives as long as the net).

    The runner copies the weights: after changing them (training), build a new one.
    """
    net = model.net if isinstance(model, StyleModel) else model
    device = resolve_device(device)
    per_device = _RUNNERS.setdefault(net, {})
    if device not in per_device:
        per_device[device] = FastRunner(net, device)
    return per_device[device]


def stylize_tiled(
    runner: FastRunner,
    image: torch.Tensor,
    tile_size: int,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats_hook: StatsHook | None = None,
    stats_pixels: int | None = None,
) -> torch.Tensor:
    """Tile by tile with InstanceNorm statistics of the whole image, downscaled to at most
    ``STATS_SIDE`` on its long side and ``stats_pixels`` in all (passed through
    ``stats_hook`` when given)."""
    height, width = image.shape[-2:]
    scale = min(1.0, STATS_SIDE / max(height, width))
    if stats_pixels is not None:
        scale = min(scale, (stats_pixels / (height * width)) ** 0.5)
    overview = resize(image, (max(1, round(height * scale)), max(1, round(width * scale))))
    _, stats = runner.run(overview, stats_hook)
    padded = _pad_to_network_size(image)  # sides on the network's stride grid
    styled = tiled(
        lambda tile: runner.run(tile, stats)[0],
        padded,
        tile_size - tile_size % PAD_MULTIPLE,
        TILE_OVERLAP,
        margin=TILE_MARGIN,
        align=PAD_MULTIPLE,
        progress=progress,
        cancel=cancel,
        stage="stylize",
    )
    return styled[..., :height, :width]


def _stylize_network(
    runner: FastRunner,
    content: torch.Tensor,
    tile_size: int | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> torch.Tensor:
    """The network's result, falling back to ever smaller tiles when memory runs out."""
    height, width = content.shape[-2:]
    out_of_memory = False
    if tile_size is None and height * width <= MAX_UNTILED_PIXELS:
        try:
            if progress is not None:  # the stage starts (tiled runs report tile by tile)
                progress(Progress(0, 1, "stylize"))
            styled = runner(content)
            if progress is not None:
                progress(Progress(1, 1, "stylize"))
            return styled
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_memory(runner.device)
            out_of_memory = True
            tile_size = min(DEFAULT_TILE, max(height, width) // 2)
    tile = max(MIN_TILE, tile_size or DEFAULT_TILE)
    while True:
        try:
            # after running out of memory the statistics pass must fit where a tile does
            stats_pixels = (tile + 2 * TILE_MARGIN) ** 2 if out_of_memory else None
            return stylize_tiled(
                runner, content, tile, progress=progress, cancel=cancel, stats_pixels=stats_pixels
            )
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_memory(runner.device)
            out_of_memory = True
            if tile <= MIN_TILE:
                raise OutOfMemoryError(
                    f"not enough memory on {runner.device} for a {width}x{height} image, even in "
                    f"{MIN_TILE}-pixel tiles: close other programs or use a smaller max_size"
                ) from exc
            tile = max(MIN_TILE, tile // 2)


def stylize_fast(
    model: StyleModel | TransformerNet,
    content: torch.Tensor,
    *,
    strength: float = 1.0,
    preserve_colors: str | None = None,
    mask: torch.Tensor | None = None,
    tile_size: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> torch.Tensor:
    """Apply a fast style network to ``content`` (``[1, 3, H, W]`` in [0, 1], any size).

    Returns a tensor of exactly the input's size on the input's device. ``strength`` blends
    with the original, ``mask`` (``[1, 1, H, W]``) limits where the style applies,
    ``preserve_colors`` is ``None``, ``"luminance"`` or ``"histogram"``. ``tile_size``
    forces tiling; otherwise large images are tiled automatically and out-of-memory
    falls back to smaller tiles. Pass RGB only: alpha stays the caller's, unchanged.
    """
    if content.dim() != 4 or content.shape[:2] != (1, 3) or min(content.shape[-2:]) < 1:
        raise ImageError(f"expected an RGB image [1, 3, H, W], got {list(content.shape)}")
    if preserve_colors not in COLOR_MODES:
        raise ParameterError(
            f"unknown colour mode {preserve_colors!r}: use none, 'luminance' or 'histogram'"
        )
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength {strength}: must be between 0 and 1")
    if tile_size is not None and tile_size < MIN_TILE:
        raise ParameterError(f"tile_size {tile_size}: must be at least {MIN_TILE}")
    check(cancel)
    if strength == 0.0:
        return content.clone()
    runner = runner_for(model, device)
    styled = _stylize_network(runner, content, tile_size, progress, cancel)
    styled = apply_colors(styled, content, preserve_colors)
    return blend(styled, content, strength, mask)
