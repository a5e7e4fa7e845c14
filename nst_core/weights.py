"""VGG weights files: where they are, which one is used, how they are read, fetched, imported.

Which file is used (``choose_weights``, the one place this rule lives):

1. an explicit path (``--vgg-weights``, ``TrainConfig.vgg_weights``);
2. weights you imported or fetched into the data dir
   (``weights_dir()/<arch>_features.safetensors``, written by ``import_weights`` and
   ``fetch_weights``);
3. the bundled VGG16 (``nst_core/bundled_vgg/``: the Oxford weights as fp16, CC BY 4.0);
4. torchvision's download cache (``torch.hub.get_dir()/checkpoints/vgg16-397923af.pth``),
   which only matters for VGG19 or an install without the bundled file.

So a fresh install paints with the bundled weights, and weights the user chose to add win
over them. Files are read without unpickling arbitrary objects: safetensors, or
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from nst_core.atomic import atomic_write
from nst_core.errors import ModelFormatError, ParameterError, WeightsMissingError
from nst_core.paths import weights_dir
from nst_core.progress import CancelToken, Progress, ProgressCallback, check

# Convolution widths of the ``features`` part, "M" = 2x2 max pooling (Simonyan & Zisserman).
# fmt: off
CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on

# torchvision's official files; the name carries the first 8 hex digits of the sha256.
OFFICIAL_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}
DOWNLOAD_BASE = "https://download.pytorch.org/models/"

# The weights shipped in the package (see bundled_vgg/LICENCE.txt for the credit).
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled_vgg"
BUNDLED_FILES = {"vgg16": "vgg16_features.safetensors"}
BUNDLED_SHA256 = {
    "vgg16": "c88264bf98d560a991520e2df55639176be5b84419bf44c578dc61a6dc3f7a9f",
}
BUNDLED_NAME = "Oxford VGG16 (K. Simonyan and A. Zisserman), fp16, CC BY 4.0"

# ``source`` values of ``WeightsChoice`` and what they mean, in the order they are tried.
SOURCES = {
    "explicit": "the file given explicitly",
    "data_dir": "imported or fetched into the data dir",
    "bundled": "bundled with the package",
    "torchvision_cache": "torchvision's download cache",
}


def check_arch(arch: str) -> str:
    if arch not in CONFIGS:
        raise ParameterError(f"unknown VGG architecture {arch!r}; use one of {sorted(CONFIGS)}")
    return arch


def expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """``features`` state-dict keys (torchvision indices) and shapes for ``arch``."""
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for item in CONFIGS[check_arch(arch)]:
        if item == "M":
            index += 1
            continue
        shapes[f"{index}.weight"] = (int(item), channels, 3, 3)
        shapes[f"{index}.bias"] = (int(item),)
        channels = int(item)
        index += 2  # conv, relu
    return shapes


def stored_path(arch: str) -> Path:
    return weights_dir() / f"{check_arch(arch)}_features.safetensors"


def bundled_path(arch: str) -> Path | None:
    """The weights file shipped in the package for ``arch``, or ``None`` (VGG19)."""
    name = BUNDLED_FILES.get(check_arch(arch))
    return None if name is None else BUNDLED_DIR / name


def torchvision_cache_path(arch: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILES[check_arch(arch)]


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file used for ``arch`` and why (``source``: a key of ``SOURCES``)."""

    arch: str
    path: Path
    source: str

    def describe(self) -> dict[str, str]:
        """A small, wire-friendly summary (``vgg_weights`` in the daemon's hello/status)."""
        name = BUNDLED_NAME if self.source == "bundled" else self.path.name
        return {"arch": self.arch, "source": self.source, "name": name, "path": str(self.path)}


def choose_weights(arch: str = "vgg16", explicit: str | Path | None = None) -> WeightsChoice:
    """The weights file to use for ``arch`` (the order is in this module's docstring).

    ``WeightsMissingError`` when an explicit file does not exist, or when there is none.
    """
    check_arch(arch)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsMissingError(f"VGG weights file not found: {path}")
        return WeightsChoice(arch, path, "explicit")
    candidates = [
        ("data_dir", stored_path(arch)),
        ("bundled", bundled_path(arch)),
        ("torchvision_cache", torchvision_cache_path(arch)),
    ]
    for source, path in candidates:
        if path is not None and path.is_file():
            return WeightsChoice(arch, path, source)
    raise WeightsMissingError(
        f"No {arch.upper()} weights found (looked in {weights_dir()} and "
        f"{torchvision_cache_path(arch).parent})"
    )


def resolve_weights(arch: str = "vgg16", explicit: str | Path | None = None) -> Path:
    """The weights file to use for ``arch``; ``WeightsMissingError`` when there is none."""
    return choose_weights(arch, explicit).path


def weights_info(arch: str = "vgg16", explicit: str | Path | None = None) -> dict[str, str]:
    """``choose_weights(...).describe()``, or ``source="missing"`` with the reason; never raises
    for a missing file (a daemon reports it and keeps serving fast styles)."""
    try:
        return choose_weights(arch, explicit).describe()
    except WeightsMissingError as exc:
        return {"arch": arch, "source": "missing", "name": "", "path": "", "error": str(exc)}


def _read_raw(path: Path) -> Mapping[str, object]:
    with open(path, "rb") as f:
        head = f.read(16)
    try:
        # safetensors: 8-byte header length, then the JSON header; else a torch file
        if head[8:9] != b"{":
            raw = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raw = load_file(str(path))
    except (SafetensorError, RuntimeError, ValueError, EOFError, OSError) as exc:
        raise ModelFormatError(f"cannot read VGG weights from {path}: {exc}") from exc
    except Exception as exc:  # weights_only unpickler refusing a foreign object
        raise ModelFormatError(
            f"refused to load {path}: it is not a plain tensor file ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise ModelFormatError(f"{path} does not hold a state dict (found {type(raw).__name__})")
    return raw


def _features_only(raw: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Keep the ``features`` tensors, accepting full-model (``features.N.*``) or bare keys."""
    prefixed = any(k.startswith("features.") for k in raw)
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if prefixed:
            if not key.startswith("features."):
                continue  # classifier
            key = key[len("features.") :]
        if isinstance(value, torch.Tensor):
            out[key] = value
    return out


def load_features_state(
    path: str | Path, arch: str | None = None
) -> tuple[str, dict[str, torch.Tensor]]:
    """Read and validate a VGG ``features`` state dict; infer ``arch`` when not given.

    Accepts torchvision ``.pth`` files (whole model or ``features`` only) and safetensors
    of the ``features`` state dict. Returns ``(arch, float32 state dict)``.
    """
    path = Path(path)
    state = _features_only(_read_raw(path))
    n_convs = sum(1 for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)
    if arch is None:
        by_count = {sum(1 for c in cfg if c != "M"): a for a, cfg in CONFIGS.items()}
        if n_convs not in by_count:
            raise ModelFormatError(
                f"{path} is not a VGG16/VGG19 weights file: found {n_convs} conv layers "
                f"(VGG16 has 13, VGG19 has 16)"
            )
        arch = by_count[n_convs]
    expected = expected_shapes(arch)
    missing = sorted(set(expected) - set(state), key=lambda k: int(k.split(".")[0]))
    if missing:
        raise ModelFormatError(
            f"{path} is not a {arch.upper()} weights file: {len(missing)} tensors missing "
            f"(first: {missing[0]}; found {n_convs} conv layers)"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ModelFormatError(
                f"{path}: tensor {key} has shape {tuple(state[key].shape)}, "
                f"{arch.upper()} needs {shape}"
            )
    clean = {k: state[k].detach().to(torch.float32).contiguous() for k in expected}
    if not all(torch.isfinite(t).all() for t in clean.values()):
        raise ModelFormatError(f"{path} holds NaN or infinite weights")
    return arch, clean


def _atomic_save(state: dict[str, torch.Tensor], dest: Path, arch: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest) as out:
        out.write(save(state, metadata={"arch": arch, "layout": "torchvision features"}))
    return dest


def import_weights(path: str | Path, arch: str | None = None) -> Path:
    """Validate a weights file and store it in the data dir as features-only safetensors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsMissingError(f"cannot import VGG weights: no file at {path}")
    arch, state = load_features_state(path, arch)
    return _atomic_save(state, stored_path(arch), arch)


def fetch_weights(
    arch: str = "vgg16",
    progress: ProgressCallback | None = None,
    *,
    url: str | None = None,
    sha256_prefix: str | None = None,
    cancel: CancelToken | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download torchvision's official weights, verify them, store features-only safetensors.

    The file's sha256 must start with the 8 hex digits in torchvision's file name (the
    same check torchvision itself applies). ``url``/``sha256_prefix`` override the source.
    Nothing is stored when the download or the check fails.
    """
    name = OFFICIAL_FILES[check_arch(arch)]
    url = url or DOWNLOAD_BASE + name
    prefix = (sha256_prefix or name.rsplit("-", 1)[1].split(".")[0]).lower()
    dest_dir = weights_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".pth", dir=dest_dir)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 20):
                check(cancel)
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(Progress(step=done, total=total, stage="download"))
        got = digest.hexdigest()
        if not got.startswith(prefix):
            raise ModelFormatError(
                f"downloaded {url} but its sha256 {got} does not start with {prefix}: "
                f"the file is corrupt or not the official one; nothing was stored"
            )
        arch, state = load_features_state(tmp, arch)
        return _atomic_save(state, stored_path(arch), arch)
    except OSError as exc:  # URLError, HTTPError, timeouts, disk errors
        raise WeightsMissingError(f"could not download {url}: {exc}") from exc
    finally:
        os.unlink(tmp)
