"""Johnson et al. (2016) image transformation network and its model files.

The network's widths and number of residual blocks are constructor arguments (the
defaults are the full network; smaller ones make a *lite* network); model files record
them in their ``architecture`` metadata. The layer names follow PyTorch's
``fast_neural_style`` example, so that example's ``.pth`` files load unchanged. The
project's own format is a safetensors file (fp16) whose metadata holds the style's name,
painting, artist, year, licence note and the training settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst_core.atomic import atomic_write
from nst_core.errors import ModelFormatError


class ConvLayer(nn.Module):
    """Reflection padding then convolution: no zero borders for the style to paint."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then convolution: avoids transposed-conv checkerboards."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


#: Today's full network: encoder widths 32, 64, 128 and 5 residual blocks (the layout of
#: PyTorch's ``fast_neural_style`` example, so its ``.pth`` files load unchanged).
DEFAULT_WIDTHS = (32, 64, 128)
DEFAULT_BLOCKS = 5


class TransformerNet(nn.Module):
    """Encoder (3 convs), residual blocks, decoder (2 upsample-convs + conv).

    ``widths`` are the channels of the three encoder convolutions (the decoder mirrors
    them), ``blocks`` the number of residual blocks at the innermost width; the defaults
    are the full network, smaller ones make a lite network of the same layout. Input and
    output are RGB in 0..255, as in the reference implementation.
    """

    def __init__(
        self, widths: tuple[int, int, int] = DEFAULT_WIDTHS, blocks: int = DEFAULT_BLOCKS
    ) -> None:
        super().__init__()
        w1, w2, w3 = (int(w) for w in widths)
        if min(w1, w2, w3) < 1 or blocks < 0:
            raise ValueError(f"widths {widths} and blocks {blocks}: need widths >= 1, blocks >= 0")
        self.widths = (w1, w2, w3)
        self.blocks = int(blocks)
        self.conv1 = ConvLayer(3, w1, kernel_size=9, stride=1)
        self.in1 = nn.InstanceNorm2d(w1, affine=True)
        self.conv2 = ConvLayer(w1, w2, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(w2, affine=True)
        self.conv3 = ConvLayer(w2, w3, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(w3, affine=True)
        for i in range(1, self.blocks + 1):  # res1, res2, ...: the example's names
            self.add_module(f"res{i}", ResidualBlock(w3))
        self.deconv1 = UpsampleConvLayer(w3, w2, kernel_size=3, upsample=2)
        self.in4 = nn.InstanceNorm2d(w2, affine=True)
        self.deconv2 = UpsampleConvLayer(w2, w1, kernel_size=3, upsample=2)
        self.in5 = nn.InstanceNorm2d(w1, affine=True)
        self.deconv3 = ConvLayer(w1, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    @property
    def architecture(self) -> dict[str, object]:
        """What a model file records so that :func:`load_style_model` rebuilds this net."""
        return {"widths": list(self.widths), "blocks": self.blocks}

    def residual_blocks(self) -> list[ResidualBlock]:
        return [getattr(self, f"res{i}") for i in range(1, self.blocks + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for block in self.residual_blocks():
            y = block(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


MAX_WIDTH, MAX_BLOCKS = 1024, 64  # a model file asking for more is not one of ours


def architecture_of(meta: dict[str, str]) -> tuple[tuple[int, int, int], int]:
    """``(widths, blocks)`` from a file's ``architecture`` metadata; files without it
    (PyTorch-example ``.pth`` files, older models) are the full network."""
    recorded = meta.get("architecture")
    if not recorded:
        return DEFAULT_WIDTHS, DEFAULT_BLOCKS
    arch = json.loads(recorded)
    widths, blocks = arch.get("widths"), arch.get("blocks")
    if (
        not isinstance(widths, list)
        or len(widths) != 3
        or not all(type(v) is int for v in [*widths, blocks])
        or not all(1 <= w <= MAX_WIDTH for w in widths)
        or not 0 <= blocks <= MAX_BLOCKS
    ):
        raise ValueError(
            f"architecture {recorded!r}: want widths (3 ints, 1..{MAX_WIDTH}) and blocks "
            f"(0..{MAX_BLOCKS})"
        )
    return (widths[0], widths[1], widths[2]), blocks


@dataclass
class StyleModel:
    net: TransformerNet
    meta: dict[str, str] = field(default_factory=dict)


_LEGACY_RUNNING_STATS = re.compile(r"in\d+\.running_(mean|var)$|\.in\d\.running_(mean|var)$")


def _load_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ModelFormatError(f"{path}: not a state dict of a fast-style network")
    return state, {}


def _network_tensors(path: Path, state: Mapping[Any, object]) -> dict[str, torch.Tensor]:
    """The state dict's tensors as float32; anything else in it is a ``ModelFormatError``."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ModelFormatError(f"{path}: not a fast-style network (key {key!r} is not a name)")
        if _LEGACY_RUNNING_STATS.search(key) or key.endswith("num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ModelFormatError(
                f"{path}: not a fast-style network ({key} is not a floating-point tensor)"
            )
        if not torch.isfinite(value).all():
            raise ModelFormatError(f"{path}: {key} holds NaN or infinite weights")
        tensors[key] = value.float()
    return tensors


def load_style_model(path: str | Path) -> StyleModel:
    """Load a project safetensors model or a PyTorch ``fast_neural_style`` ``.pth``.

    Never unpickles arbitrary objects (``weights_only=True``); every failure is a
    ``ModelFormatError`` naming the file.
    """
    path = Path(path)
    try:
        state, meta = _load_state_dict(path)
    except ModelFormatError:
        raise
    except Exception as exc:  # corrupt, truncated, malicious pickle, ...
        raise ModelFormatError(f"{path}: cannot read style model ({exc})") from exc
    tensors = _network_tensors(path, state)
    try:
        widths, blocks = architecture_of(meta)
        net = TransformerNet(widths, blocks)
        net.load_state_dict(tensors)
    except (RuntimeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{path}: not a fast-style network ({exc})") from exc
    meta.setdefault("name", path.stem)
    return StyleModel(net.eval().requires_grad_(False), meta)


def save_style_model(
    path: str | Path, net: TransformerNet, meta: dict[str, object], half: bool = True
) -> Path:
    """Write the project's format; non-string metadata values are stored as JSON. The
    network's ``architecture`` (widths, residual blocks) is always recorded."""
    from safetensors.torch import save

    path = Path(path)
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in net.state_dict().items()}
    meta = {**meta, "architecture": net.architecture}
    text_meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as out:
        out.write(save(tensors, metadata=text_meta))
    return path
