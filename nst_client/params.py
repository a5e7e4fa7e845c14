"""The parameters of ``stylize`` and ``train`` requests: names, types, ranges, defaults.

Defined once, here: each parameter is a field of a frozen dataclass (``FastParams``,
``GatysParams``, ``TrainParams``) with its default and its check. Building one checks
every value (a wrong type, NaN, infinity or a value out of range raises
``ProtocolError`` ``bad_parameter``), so the daemon and in-process callers refuse
exactly the same inputs. ``to_wire`` gives the ``params`` map (the values that differ
from the defaults, so an older daemon sees only what it knows); ``from_wire`` refuses
unknown names. ``tests/test_protocol.py`` checks the defaults and ranges against the
engine's (``nst_core``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from .errors import ProtocolError
from .names import looks_like_path, style_name_problem

MAX_SIDE = 65_535
MAX_STYLE_IMAGES = 8
MAX_ID_LENGTH = 64
MIN_TILE_SIZE = 256  # the engine's smallest tile (nst_core.fast.MIN_TILE)
MAX_TILE_SIZE = 16_384
MAX_SEED = 2**63 - 1
METHODS = ("fast", "gatys")
PRESERVE_COLORS = (None, "luminance", "histogram")
QUALITIES = ("draft", "balanced", "high")  # nst_core.gatys.QUALITY_PRESETS
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "fast")
CONSISTENCIES = ("off", "stats", "full")  # nst_core.motion
SPEEDS = ("auto", "fast", "best")  # nst_core.styles.SPEEDS: which network of a style runs
STYLE_SCALE = (0.05, 4.0)  # style image size relative to the content (nst_core.gatys)

Check = Callable[[str, object], Any]


def is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_style_name(name: object, what: str = "style") -> str:
    """A catalogue name (the rule of ``nst_client.names``); never a path."""
    if not isinstance(name, str):
        raise ProtocolError("bad_request", f"{what} must be a string")
    if looks_like_path(name):
        raise ProtocolError(
            "bad_parameter",
            f"{what} {name!r} looks like a file path; give a style name from the catalogue "
            "(import your own model with `nst styles import FILE`)",
        )
    problem = style_name_problem(name)
    if problem is not None:
        raise ProtocolError("bad_parameter", f"{what} {name!r} {problem}")
    return name


def number(lo: float, hi: float, integer: bool = False, above: bool = False) -> Check:
    """A number in ``lo..hi`` (``above``: strictly greater than ``lo``)."""

    def check(name: str, x: Any) -> Any:
        real = is_int(x) or (isinstance(x, float) and math.isfinite(x))
        ok = is_int(x) if integer else real
        if not ok or not lo <= x <= hi or (above and x == lo):
            kind = "an integer" if integer else "a finite number"
            span = f"above {lo} and at most {hi}" if above else f"in {lo}..{hi}"
            raise ProtocolError("bad_parameter", f"params.{name} must be {kind} {span}")
        return int(x) if integer else float(x)

    return check


def choice(values: tuple[object, ...]) -> Check:
    def check(name: str, x: object) -> object:
        if x not in values:
            raise ProtocolError(
                "bad_parameter", f"params.{name} must be one of {list(values)}, not {x!r}"
            )
        return x

    return check


def optional(inner: Check) -> Check:
    return lambda name, x: None if x is None else inner(name, x)


def number_list(lo: float, hi: float, max_len: int) -> Check:
    item = number(lo, hi)

    def check(name: str, x: object) -> tuple[float, ...]:
        if not isinstance(x, list | tuple) or not 1 <= len(x) <= max_len:
            raise ProtocolError("bad_parameter", f"params.{name} must be a list of 1..{max_len}")
        return tuple(item(name, v) for v in x)

    return check


def text(max_len: int) -> Check:
    def check(name: str, x: object) -> str:
        if not isinstance(x, str) or len(x) > max_len:
            raise ProtocolError(
                "bad_parameter", f"params.{name} must be a string of at most {max_len} chars"
            )
        return x

    return check


def clip_id(name: str, x: object) -> object:
    if x is None:
        return None
    if not isinstance(x, str) or not 1 <= len(x) <= MAX_ID_LENGTH or not x.isprintable():
        raise ProtocolError(
            "bad_parameter", f"params.{name} must be a string of 1..{MAX_ID_LENGTH} characters"
        )
    return x


def style_name_or_none(name: str, x: object) -> object:
    return None if x is None else check_style_name(x, f"params.{name}")


def param(default: Any, check: Check) -> Any:
    """A parameter field: its default and its check."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class Params:
    """Base of the parameter sets: checks every field, (de)serialises generically."""

    CONTEXT: ClassVar[str] = "params"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))

    def to_wire(self) -> dict[str, Any]:
        """The ``params`` map: every value that differs from its default."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_wire(cls, params: object) -> Self:
        """Check a wire ``params`` map (``None``: all defaults); unknown names are refused."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ProtocolError("bad_request", "params must be a map")
        known = {f.name for f in fields(cls)}
        for name in params:
            if name not in known:
                raise ProtocolError(
                    "bad_parameter",
                    f"unknown parameter {name!r} for {cls.CONTEXT}; known: {sorted(known)}",
                )
        return cls(**params)


@dataclass(frozen=True)
class CommonParams(Params):
    """What every stylisation takes."""

    strength: float = param(1.0, number(0.0, 1.0))  # blend with the original
    preserve_colors: str | None = param(None, choice(PRESERVE_COLORS))
    max_size: int | None = param(None, optional(number(16, MAX_SIDE, integer=True)))
    tile_size: int | None = param(
        None, optional(number(MIN_TILE_SIZE, MAX_TILE_SIZE, integer=True))
    )
    seed: int = param(0, number(0, MAX_SEED, integer=True))


@dataclass(frozen=True)
class FastParams(CommonParams):
    """A fast-style stylisation; ``clip``/``clip_frame``/``consistency`` make it a frame of
    a video, stylised consistently with the clip's earlier frames (``nst_daemon.video``).

    ``speed`` chooses the style's network (``nst_core.styles.choose_variant``): ``best``
    the full one; ``fast`` the lite one where the style has one (``StyleEntry.variants``),
    else the full one; ``auto`` the lite one on a CPU daemon, the full one on a GPU. The
    ``Result`` names the variant that ran."""

    CONTEXT: ClassVar[str] = "method 'fast'"

    clip: str | None = param(None, clip_id)
    clip_frame: int = param(0, number(0, 2**31 - 1, integer=True))
    consistency: str = param("full", choice(CONSISTENCIES))
    speed: str = param("auto", choice(SPEEDS))


@dataclass(frozen=True)
class GatysParams(CommonParams):
    """A Gatys optimisation (``nst_core.gatys.GatysParams``); ``iterations`` ``None``:
    the ``quality`` preset's."""

    CONTEXT: ClassVar[str] = "method 'gatys'"

    iterations: int | None = param(None, optional(number(1, 100_000, integer=True)))
    style_strength: float = param(1.0, number(0.0, 1e6, above=True))
    style_scale: float = param(1.0, number(*STYLE_SCALE))
    optimizer: str = param("lbfgs", choice(OPTIMIZERS))
    init: str = param("content", choice(INITS))
    init_style: str | None = param(None, style_name_or_none)  # for init "fast"
    quality: str = param("balanced", choice(QUALITIES))
    style_weights: tuple[float, ...] | None = param(
        None, optional(number_list(0.0, 1e6, MAX_STYLE_IMAGES))
    )
    preview_every: int = param(0, number(0, 100_000, integer=True))


@dataclass(frozen=True)
class TrainParams(Params):
    """Training of a fast-style model (``nst_core.train.TrainConfig``); ``dataset`` is a
    folder of photos on the daemon's machine, an absolute path."""

    CONTEXT: ClassVar[str] = "train"

    dataset: str = param(None, optional(text(4096)))  # required: None is refused
    steps: int = param(2000, number(1, 10_000_000, integer=True))
    batch_size: int = param(4, number(1, 256, integer=True))
    image_size: int = param(256, number(32, 4096, integer=True))
    style_size: int = param(512, number(32, 4096, integer=True))
    content_weight: float = param(1.0, number(0.0, 1e12))
    style_weight: float = param(5.0, number(0.0, 1e12))
    tv_weight: float = param(1e-2, number(0.0, 1e12))
    lr: float = param(1e-3, number(1e-8, 1.0))
    seed: int = param(0, number(0, MAX_SEED, integer=True))
    preview_every: int = param(0, number(0, 10_000_000, integer=True))
    title: str = param("", text(200))
    artist: str = param("", text(200))
    year: str = param("", text(32))
    licence: str = param("public domain", text(200))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset is None:
            raise ProtocolError("bad_parameter", "train needs params.dataset (a folder of photos)")
        if not os.path.isabs(self.dataset):
            raise ProtocolError(
                "bad_parameter",
                f"params.dataset must be an absolute folder path on the daemon's machine, "
                f"not {self.dataset!r}",
            )

    def engine_options(self) -> dict[str, Any]:
        """The fields as ``nst_core.train.TrainConfig`` keywords (all but ``dataset``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dataset"}


METHOD_PARAMS: dict[str, type[FastParams] | type[GatysParams]] = {
    "fast": FastParams,
    "gatys": GatysParams,
}
