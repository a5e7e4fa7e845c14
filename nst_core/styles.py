"""The catalogue of fast-style models: bundled with the product, then the user's own.

A style is a project safetensors file named ``<name>.safetensors``; its metadata holds
the title, artist, year and licence of the painting it was trained on. A lite network
distilled from it may lie beside it (``<name>.lite.safetensors``); ``choose_variant`` says
which of the two runs a job.

The import policy lives here too, for every front-end: which files are models
(``MODEL_SUFFIXES``), which names a new style may take (``new_style_path``: never a
bundled style's, another user style's only when overwriting), and how a model file
given in place of a style name is used (``use_model_file``). Importing this module
does not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from nst_client.names import slug, style_name_problem
from nst_core import paths
from nst_core.errors import ModelFormatError, ParameterError, StyleNotFoundError

if TYPE_CHECKING:
    import torch

SUFFIX = ".safetensors"
MODEL_SUFFIXES = (SUFFIX, ".pth", ".pt")
#: Variants of a style: its full network (``<name>.safetensors``) and, where one ships
#: beside it, a lite network distilled from it (``<name>.lite.safetensors``, faster, see
#: ``nst_core.distill``).
VARIANTS = ("full", "lite")
LITE_SUFFIX = ".lite" + SUFFIX
#: How a request chooses between them (``nst_client.params.SPEEDS``, which a test
#: compares): ``best`` the full network; ``fast`` the lite one where the style has one,
#: else the full one; ``auto`` the lite one on a CPU, the full one on a GPU (CUDA, MPS),
#: where the full network is fast already. :func:`choose_variant` is the rule.
SPEEDS = ("auto", "fast", "best")


@dataclass
class StyleInfo:
    name: str
    title: str
    artist: str
    year: str
    licence: str
    source: str  # "bundled" | "user"
    path: Path
    meta: dict[str, str] = field(default_factory=dict)
    variants: dict[str, Path] = field(default_factory=dict)  # "full", and "lite" if shipped


def _read_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # truncated or not safetensors at all
        raise ModelFormatError(f"{path}: cannot read style model ({exc})") from exc


def _sources() -> list[tuple[str, Path]]:
    return [("bundled", paths.bundled_styles_dir()), ("user", paths.user_styles_dir())]


def list_styles() -> list[StyleInfo]:
    """Every readable style, bundled first; a user style never shadows a bundled one."""
    styles: dict[str, StyleInfo] = {}
    for source, folder in _sources():
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
            if path.stem in styles or path.name.endswith(LITE_SUFFIX):
                continue  # a lite file is a variant of its style, not a style
            try:
                meta = _read_meta(path)
            except ModelFormatError:
                continue  # an unreadable file is not a style; load errors name it on use
            styles[path.stem] = StyleInfo(
                name=path.stem,
                title=meta.get("title", path.stem),
                artist=meta.get("artist", ""),
                year=str(meta.get("year", "")),
                licence=meta.get("licence", ""),
                source=source,
                path=path,
                meta=meta,
                variants=_variants(path),
            )
    return list(styles.values())


def _variants(path: Path) -> dict[str, Path]:
    lite = path.with_name(path.name.removesuffix(SUFFIX) + LITE_SUFFIX)
    return {"full": path, **({"lite": lite} if lite.is_file() else {})}


def variant_path(path: Path, variant: str) -> Path:
    """The model file of ``variant`` of the style whose full model is ``path``; the full
    one when that style has no such variant (``StyleInfo.variants`` says which exist)."""
    if variant not in VARIANTS:
        raise ParameterError(f"unknown style variant {variant!r}: use {' or '.join(VARIANTS)}")
    return _variants(path).get(variant, path)


class ChosenModel(NamedTuple):
    variant: str  # "full" or "lite"
    path: Path


def choose_variant(style: Path | StyleInfo, speed: str, device: str | torch.device) -> ChosenModel:
    """The model file that runs a fast-style job: the variant of ``style`` (its full
    model's path, or its ``StyleInfo``) that ``speed`` (``SPEEDS``) asks for on
    ``device``; the full model where the style has no lite one."""
    if speed not in SPEEDS:
        raise ParameterError(f"unknown speed {speed!r}: use {', '.join(SPEEDS)}")
    path, known = (style.path, style.variants) if isinstance(style, StyleInfo) else (style, {})
    variants = known or _variants(path)
    on_cpu = getattr(device, "type", str(device).partition(":")[0]) == "cpu"
    wants_lite = speed == "fast" or (speed == "auto" and on_cpu)
    variant = "lite" if wants_lite and "lite" in variants else "full"
    return ChosenModel(variant, variants[variant])


def _check_name(name: str) -> str:
    name = name.removesuffix(SUFFIX)
    problem = style_name_problem(name)
    if problem is not None:
        raise StyleNotFoundError(f"{name!r} is not a style name: it {problem}")
    return name


def new_style_path(name: str, *, overwrite: bool = False) -> Path:
    """Where a new user style called ``name`` goes; refuses a name that is taken.

    A bundled style's name is never available (the bundled one would shadow the new
    style); an existing user style is replaced only with ``overwrite``.
    """
    problem = style_name_problem(name)
    if problem is not None:
        raise ParameterError(f"style name {name!r} {problem}")
    if (paths.bundled_styles_dir() / f"{name}{SUFFIX}").exists():
        raise ParameterError(f"{name!r} is the name of a bundled style: choose another name")
    target = paths.user_styles_dir() / f"{name}{SUFFIX}"
    if target.exists() and not overwrite:
        raise ParameterError(
            f"a style called {name!r} already exists ({target}): choose another name, "
            "or ask explicitly to overwrite it"
        )
    return target


def find_style(name: str) -> Path:
    """The model file of the style called ``name`` (bundled first, then the user's)."""
    name = _check_name(name)
    for _, folder in _sources():
        path = folder / f"{name}{SUFFIX}"
        if path.is_file():
            return path
    available = ", ".join(s.name for s in list_styles()) or "none installed"
    raise StyleNotFoundError(f"no style called {name!r} (available: {available})")


def resolve_style_arg(arg: str) -> Path:
    """For the command line: an existing model file path, else a style name."""
    candidate = Path(arg).expanduser()
    if candidate.suffix in MODEL_SUFFIXES and candidate.is_file():
        return candidate
    return find_style(arg)


def import_style(path: str | Path, name: str | None = None) -> Path:
    """Copy a model (PyTorch-example ``.pth`` or project safetensors) into the user's styles.

    The model must load; its metadata records the source file's name.
    """
    from nst_core.transformer_net import load_style_model, save_style_model

    path = Path(path)
    model = load_style_model(path)
    name = _check_name(name or slug(path.stem))
    target = new_style_path(name)
    meta: dict[str, object] = {**model.meta, "name": name, "source_file": path.name}
    meta.setdefault("title", name)
    return save_style_model(target, model.net, meta)


class StyleNameTakenError(ParameterError):
    """A model file's name is the name of a style that holds another network."""

    def __init__(self, name: str, existing: Path) -> None:
        super().__init__(f"a different style called {name!r} exists already ({existing})")
        self.name, self.existing = name, existing


def looks_like_model_file(arg: str) -> bool:
    """Whether a ``--style`` argument names a model file rather than a style: it holds a
    path separator or ends with a model file's extension (``MODEL_SUFFIXES``)."""
    return os.sep in arg or "/" in arg or Path(arg).suffix in MODEL_SUFFIXES


def same_network(a: Path, b: Path) -> bool:
    """Whether two model files hold the same weights (up to fp16 storage rounding)."""
    from nst_core.transformer_net import load_style_model

    sa, sb = (load_style_model(p).net.state_dict() for p in (a, b))
    return sa.keys() == sb.keys() and all(sa[k].half().equal(sb[k].half()) for k in sa)


def use_model_file(path: Path) -> tuple[str, bool]:
    """The style name under which the model file ``path`` is used: ``(name, imported)``.

    The name is the file's name without extension (made a valid style name). The file
    is imported under it when no style has that name; when one does, it is reused if it
    holds the same network (the same file used again), else ``StyleNameTakenError``.
    """
    name = slug(path.stem)
    try:
        existing = find_style(name)
    except StyleNotFoundError:
        import_style(path, name)
        return name, True
    if not same_network(existing, path):
        raise StyleNameTakenError(name, existing)
    return name, False


def preview_pattern(size: int) -> torch.Tensor:
    """A procedural picture (sky gradient, sun, hills, a striped field) in ``[1, 3, s, s]``."""
    import torch

    t = torch.linspace(0.0, 1.0, size)
    y, x = t[:, None].expand(size, size), t[None, :].expand(size, size)
    sky = torch.stack([0.35 + 0.3 * y, 0.55 + 0.3 * y, 0.95 - 0.2 * y])
    sun = (((x - 0.72) ** 2 + (y - 0.28) ** 2) < 0.02).float()
    hills = (y > 0.62 + 0.08 * torch.sin(9.0 * x)).float()
    stripes = 0.5 + 0.5 * torch.sin(40.0 * (x + 0.5 * y))
    field_rgb = torch.stack([0.25 + 0.3 * stripes, 0.45 + 0.25 * stripes, 0.15 + 0.0 * x])
    image = sky * (1 - sun) + torch.tensor([1.0, 0.85, 0.3])[:, None, None] * sun
    image = image * (1 - hills) + field_rgb * hills
    return image.unsqueeze(0).clamp(0.0, 1.0)


def style_preview(path: str | Path, size: int = 96) -> torch.Tensor:
    """The style applied to :func:`preview_pattern` (``[1, 3, size, size]``), cached per file."""
    path = Path(path)
    return _preview(path.resolve(), path.stat().st_mtime_ns, size).clone()


@lru_cache(maxsize=64)
def _preview(path: Path, mtime_ns: int, size: int) -> torch.Tensor:
    from nst_core.fast import stylize_fast
    from nst_core.transformer_net import load_style_model

    return stylize_fast(load_style_model(path), preview_pattern(size), device="cpu")
