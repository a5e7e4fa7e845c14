"""Frozen VGG16/VGG19 ``features`` with layers addressed by name (``relu4_2``, ``conv1_1``...).

The module indices match torchvision's ``vgg16().features``/``vgg19().features``, so their
state dicts load unchanged. Input is RGB in [0, 1]; ImageNet normalisation happens inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from nst_core.errors import ParameterError
from nst_core.weights import (
    CONFIGS,
    WeightsChoice,
    choose_weights,
    fetch_weights,
    import_weights,
    load_features_state,
    resolve_weights,
)

__all__ = [
    "VGGFeatures",
    "layer_names",
    "make_features",
    "resolve_weights",
    "choose_weights",
    "fetch_weights",
    "import_weights",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str = "vgg16") -> list[str]:
    """Names of the ``features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    if arch not in CONFIGS:
        raise ParameterError(f"unknown VGG architecture {arch!r}; use one of {sorted(CONFIGS)}")
    names: list[str] = []
    block, index = 1, 1
    for item in CONFIGS[arch]:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


def make_features(arch: str = "vgg16", pooling: str = "max") -> nn.Sequential:
    """An (untrained) ``features`` stack with torchvision's module indices."""
    if pooling not in ("max", "avg"):
        raise ParameterError(f"pooling must be 'max' or 'avg', not {pooling!r}")
    layers: list[nn.Module] = []
    channels = 3
    for item in CONFIGS[arch]:
        if item == "M":
            pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
            layers.append(pool(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(item)
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """VGG ``features`` truncated after the deepest requested layer, frozen, in eval mode.

    ``weights``: a file path, an already loaded ``features`` state dict, or ``None`` for
    the weights ``nst_core.weights.choose_weights`` picks (imported or fetched ones in the
    data dir, else the bundled VGG16). ``weights_choice`` says which file was read (``None``
    for a state dict).
    ``pooling="avg"`` replaces max pooling by average pooling (Gatys et al. 2016, sec. 2).
    """

    mean: torch.Tensor  # ImageNet normalisation, buffers: they follow the network's device
    std: torch.Tensor

    def __init__(
        self,
        arch: str = "vgg16",
        layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"),
        weights: str | Path | Mapping[str, torch.Tensor] | None = None,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        names = layer_names(arch)
        self.arch = arch
        self.layers = tuple(dict.fromkeys(layers))
        if not self.layers:
            raise ParameterError("VGGFeatures needs at least one layer name")
        unknown = [n for n in self.layers if n not in names]
        if unknown:
            raise ParameterError(
                f"unknown {arch.upper()} layer(s) {unknown}; valid names look like "
                f"relu1_1, conv3_2, relu4_2, pool5 (all: {', '.join(names)})"
            )
        self.weights_choice: WeightsChoice | None = None
        if isinstance(weights, Mapping):
            state = {k: v.detach().to(torch.float32) for k, v in weights.items()}
        else:
            self.weights_choice = choose_weights(arch, weights)
            _, state = load_features_state(self.weights_choice.path, arch)
        with torch.device("meta"):  # no wasted random initialisation
            full = make_features(arch, pooling)
        full.load_state_dict(state, assign=True)
        depth = max(names.index(n) for n in self.layers) + 1
        self.features = full[:depth]
        self.names = names[:depth]
        self.pooling = pooling
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:  # always frozen
        return super().train(False)

    def forward(
        self, x: torch.Tensor, layers: Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (default: those given at construction) for ``x`` in [0, 1].

        Stops after the deepest requested layer, so one resident network can serve
        requests that need fewer layers.
        """
        wanted = set(self.layers if layers is None else layers)
        missing = wanted - set(self.names)
        if missing:
            raise ParameterError(
                f"layer(s) {sorted(missing)} are deeper than this network "
                f"(built up to {self.names[-1]})"
            )
        h = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.features, strict=True):
            h = module(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out
