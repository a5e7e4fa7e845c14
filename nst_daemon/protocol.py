"""The wire protocol: message types, fields, limits, validation and error codes.

One msgpack map per ZeroMQ frame. Clients use a DEALER socket and send ``[payload]``;
the daemon's ROUTER socket sees ``[identity, payload]``. Every message carries
``"v": [major, minor]``, ``"id"`` (the request id, a string; replies repeat it) and
``"type"``. See ``docs/protocol.md`` for every message with examples.

This module imports only msgpack and the standard library: the GIMP plug-in vendors it,
the client and the daemon use it, and every request is validated here so that the
daemon and the CLI's in-process mode reject exactly the same inputs.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from nst_client.names import looks_like_path, style_name_problem

PROTOCOL_VERSION: tuple[int, int] = (1, 0)
DEFAULT_ENDPOINT = "tcp://127.0.0.1:47811"

# Liveness: a client waiting for a job sends ``ping`` every PING_INTERVAL_S; the daemon
# cancels the jobs of a client it has not heard from for CLIENT_SILENCE_S, or for two
# ping intervals once the client's connection has been reported closed.
PING_INTERVAL_S = 0.5
CLIENT_SILENCE_S = 4.0

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30  # 1 GiB: an 8000 x 8000 RGBA u16 layer fits
MAX_SIDE = 65_535
MAX_STYLE_IMAGES = 8
MAX_ID_LENGTH = 64
MIN_TILE_SIZE = 256  # the engine's smallest tile (nst_core.fast.MIN_TILE; a test compares)

REQUEST_TYPES = ("hello", "styles", "stylize", "cancel", "status", "train", "ping", "shutdown")
METHODS = ("fast", "gatys")

ERROR_CODES: dict[str, str] = {
    # protocol and transport
    "bad_request": "the message is not a valid request (not msgpack, wrong types, fields)",
    "unsupported_version": "the request's protocol major version is not spoken here",
    "too_large": "image or message larger than the daemon's limits",
    "busy": "the daemon's queue is full",
    "forbidden": "not allowed from this peer (e.g. shutdown from another machine)",
    "unknown_job": "no job with this id",
    "daemon_unavailable": "no daemon answers and none could be started",
    "timeout": "no message from the daemon within the client's timeout",
    "shutting_down": "the daemon is stopping and accepts no new jobs",
    "internal": "unexpected failure inside the daemon (see its log)",
    # engine (nst_core.errors)
    "weights_missing": "VGG weights are not installed",
    "unknown_style": "no style with this name",
    "bad_model": "a style model or weights file cannot be read",
    "bad_image": "the image cannot be used",
    "bad_parameter": "a parameter has a wrong type or value",
    "out_of_memory": "the device ran out of memory",
    "cancelled": "the job was cancelled",
}

_DTYPE_SIZES = {"u8": 1, "u16": 2, "f32": 4}


def default_endpoint() -> str:
    """``$NST_ENDPOINT`` or ``tcp://127.0.0.1:47811``."""
    return os.environ.get("NST_ENDPOINT") or DEFAULT_ENDPOINT


class ProtocolError(Exception):
    """A request the daemon refuses; ``code`` is one of ``ERROR_CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in ERROR_CODES else "internal"
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass
class Image:
    """Raw interleaved pixels: channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA."""

    width: int
    height: int
    channels: int
    data: bytes
    dtype: str = "u8"

    def to_wire(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "dtype": self.dtype,
            "data": bytes(self.data),
        }

    @classmethod
    def from_wire(
        cls, obj: object, limits: Limits | None = None, what: str = "image"
    ) -> Image:
        """Check a wire map (types, sizes, data length) and build an ``Image``."""
        limits = limits or Limits()
        if isinstance(obj, Image):
            obj = obj.to_wire()
        m = _map(obj, what)
        width = _int_field(m, "width", what, 1, MAX_SIDE)
        height = _int_field(m, "height", what, 1, MAX_SIDE)
        channels = _int_field(m, "channels", what, 1, 4)
        dtype = m.get("dtype", "u8")
        if not isinstance(dtype, str) or dtype not in _DTYPE_SIZES:
            raise ProtocolError(
                "bad_request", f"{what}.dtype must be one of {list(_DTYPE_SIZES)}, not {dtype!r}"
            )
        if width * height > limits.max_pixels:
            raise ProtocolError(
                "too_large",
                f"{what} is {width}x{height} = {width * height:,} pixels; this daemon's "
                f"limit is {limits.max_pixels:,} (scale the image down, or start the daemon "
                "with a larger --max-pixels)",
            )
        data = m.get("data")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ProtocolError("bad_request", f"{what}.data must be binary (msgpack bin)")
        expected = width * height * channels * _DTYPE_SIZES[dtype]
        if len(data) != expected:
            raise ProtocolError(
                "bad_request",
                f"{what}.data has {len(data):,} bytes; {width}x{height}x{channels} {dtype} "
                f"needs {expected:,}",
            )
        return cls(width, height, channels, bytes(data), dtype)


# --------------------------------------------------------------------------- encoding


def encode(msg: Mapping[str, Any]) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def decode(payload: bytes | memoryview) -> dict[str, Any]:
    """Parse one frame into a message map; checks the envelope (v, id, type) only.

    Raises ``ProtocolError``; when even the request id cannot be read the error's
    reply goes out with ``id`` ``""``.
    """
    try:
        msg = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise ProtocolError("bad_request", f"not a msgpack message ({exc})") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_request", "a message must be a msgpack map")
    return msg


def request_id(msg: Mapping[str, Any]) -> str:
    """The message's id if it is usable, else ``""`` (for error replies)."""
    rid = msg.get("id")
    return rid if isinstance(rid, str) and len(rid) <= MAX_ID_LENGTH else ""


def check_envelope(msg: Mapping[str, Any]) -> str:
    """Validate ``v``, ``id`` and ``type``; returns the type."""
    v = msg.get("v")
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    ):
        raise ProtocolError("bad_request", 'field "v" must be [major, minor] protocol version')
    if v[0] != PROTOCOL_VERSION[0]:
        raise ProtocolError(
            "unsupported_version",
            f"protocol {v[0]}.{v[1]} is not supported; this side speaks "
            f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]} (update the older of client and daemon)",
        )
    rid = msg.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_ID_LENGTH:
        raise ProtocolError(
            "bad_request", f'field "id" must be a non-empty string of at most {MAX_ID_LENGTH}'
        )
    kind = msg.get("type")
    if kind not in REQUEST_TYPES:
        raise ProtocolError(
            "bad_request", f"unknown message type {kind!r}; known: {list(REQUEST_TYPES)}"
        )
    return kind


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def make_request(kind: str, **fields: Any) -> dict[str, Any]:
    """A request map with version and a fresh id; ``None`` fields are left out."""
    msg: dict[str, Any] = {"v": list(PROTOCOL_VERSION), "id": new_id(), "type": kind}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


def make_reply(kind: str, rid: str, **fields: Any) -> dict[str, Any]:
    return {"v": list(PROTOCOL_VERSION), "id": rid, "type": kind, **fields}


def make_error(rid: str, code: str, message: str, job_id: str | None = None) -> dict[str, Any]:
    reply = make_reply("error", rid, code=code if code in ERROR_CODES else "internal",
                       message=message)
    if job_id is not None:
        reply["job_id"] = job_id
    return reply


# --------------------------------------------------------------------------- validation


def _map(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ProtocolError("bad_request", f"{what} must be a map")
    return obj


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_field(m: Mapping[str, Any], key: str, what: str, lo: int, hi: int) -> int:
    x = m.get(key)
    if not _is_int(x) or not lo <= x <= hi:
        raise ProtocolError("bad_request", f"{what}.{key} must be an integer in {lo}..{hi}")
    return x


def check_style_name(name: object, what: str = "style") -> str:
    """A catalogue name (the rule of ``nst_core.names``); never a path."""
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


Check = Callable[[str, object], object]


def _number(lo: float, hi: float, integer: bool = False, above: bool = False) -> Check:
    """A number in ``lo..hi`` (``above``: strictly greater than ``lo``)."""

    def check(name: str, x: object) -> object:
        real = _is_int(x) or (isinstance(x, float) and math.isfinite(x))
        ok = _is_int(x) if integer else real
        if not ok or not lo <= x <= hi or (above and x == lo):
            kind = "an integer" if integer else "a finite number"
            span = f"above {lo} and at most {hi}" if above else f"in {lo}..{hi}"
            raise ProtocolError("bad_parameter", f"params.{name} must be {kind} {span}")
        return int(x) if integer else float(x)

    return check


def _choice(*values: object) -> Check:
    def check(name: str, x: object) -> object:
        if x not in values:
            raise ProtocolError(
                "bad_parameter", f"params.{name} must be one of {list(values)}, not {x!r}"
            )
        return x

    return check


def _optional(inner: Check) -> Check:
    return lambda name, x: None if x is None else inner(name, x)


def _number_list(lo: float, hi: float, max_len: int) -> Check:
    item = _number(lo, hi)

    def check(name: str, x: object) -> object:
        if not isinstance(x, list | tuple) or not 1 <= len(x) <= max_len:
            raise ProtocolError("bad_parameter", f"params.{name} must be a list of 1..{max_len}")
        return [item(name, v) for v in x]

    return check


def _text(max_len: int) -> Check:
    def check(name: str, x: object) -> object:
        if not isinstance(x, str) or len(x) > max_len:
            raise ProtocolError(
                "bad_parameter", f"params.{name} must be a string of at most {max_len} chars"
            )
        return x

    return check


def _clip_id(name: str, x: object) -> object:
    if not isinstance(x, str) or not 1 <= len(x) <= MAX_ID_LENGTH or not x.isprintable():
        raise ProtocolError(
            "bad_parameter", f"params.{name} must be a string of 1..{MAX_ID_LENGTH} characters"
        )
    return x


COMMON_PARAMS: dict[str, Check] = {
    "strength": _number(0.0, 1.0),
    "preserve_colors": _choice(None, "luminance", "histogram"),
    "max_size": _optional(_number(16, MAX_SIDE, integer=True)),
    "tile_size": _optional(_number(MIN_TILE_SIZE, 16384, integer=True)),
    "seed": _number(0, 2**63 - 1, integer=True),
}
GATYS_PARAMS: dict[str, Check] = {
    "iterations": _number(1, 100_000, integer=True),
    "style_strength": _number(0.0, 1e6, above=True),
    "style_scale": _number(0.05, 4.0),
    "optimizer": _choice("lbfgs", "adam"),
    "init": _choice("content", "noise", "fast"),
    "init_style": lambda name, x: check_style_name(x, "params.init_style"),
    "quality": _choice("draft", "balanced", "high"),
    "style_weights": _number_list(0.0, 1e6, MAX_STYLE_IMAGES),
    "preview_every": _number(0, 100_000, integer=True),
}
#: A frame of a video (fast method only): frames that share a ``clip`` id are stylised
#: with temporal consistency, in ``clip_frame`` order (``nst_daemon.video``).
VIDEO_PARAMS: dict[str, Check] = {
    "clip": _clip_id,
    "clip_frame": _number(0, 2**31 - 1, integer=True),
    "consistency": _choice("off", "stats", "full"),
}
METHOD_PARAMS = {
    "fast": {**COMMON_PARAMS, **VIDEO_PARAMS},
    "gatys": {**COMMON_PARAMS, **GATYS_PARAMS},
}

TRAIN_PARAMS: dict[str, Check] = {
    "dataset": _text(4096),  # folder of training photos on the daemon's machine
    "steps": _number(1, 10_000_000, integer=True),
    "batch_size": _number(1, 256, integer=True),
    "image_size": _number(32, 4096, integer=True),
    "style_size": _number(32, 4096, integer=True),
    "content_weight": _number(0.0, 1e12),
    "style_weight": _number(0.0, 1e12),
    "tv_weight": _number(0.0, 1e12),
    "lr": _number(1e-8, 1.0),
    "seed": _number(0, 2**63 - 1, integer=True),
    "preview_every": _number(0, 10_000_000, integer=True),
    "title": _text(200),
    "artist": _text(200),
    "year": _text(32),
    "licence": _text(200),
}


def check_params(params: object, spec: Mapping[str, Check], context: str) -> dict[str, Any]:
    """Known names only, each of the right type and range (no NaN or infinity)."""
    if params is None:
        return {}
    m = _map(params, "params")
    out: dict[str, Any] = {}
    for name, value in m.items():
        check = spec.get(name)
        if check is None:
            raise ProtocolError(
                "bad_parameter",
                f"unknown parameter {name!r} for {context}; known: {sorted(spec)}",
            )
        out[name] = check(name, value)
    return out


@dataclass
class StylizeRequest:
    """A validated ``stylize`` request: what ``jobs.execute_stylize`` runs."""

    image: Image
    method: str = "fast"
    style: str | None = None
    style_images: list[Image] = field(default_factory=list)
    mask: Image | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainRequest:
    name: str
    style_image: Image
    params: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False  # may replace a user style of the same name, never a bundled one


def parse_stylize(msg: Mapping[str, Any], limits: Limits | None = None) -> StylizeRequest:
    limits = limits or Limits()
    method = msg.get("method", "fast")
    if method not in METHODS:
        raise ProtocolError("bad_parameter", f"unknown method {method!r}; use one of {METHODS}")
    image = Image.from_wire(msg.get("image"), limits, "image")
    style = msg.get("style")
    if style is not None:
        style = check_style_name(style)
    raw_styles = msg.get("style_image")
    if raw_styles is None:
        raw_styles = []
    elif not isinstance(raw_styles, list | tuple):
        raw_styles = [raw_styles]
    if len(raw_styles) > MAX_STYLE_IMAGES:
        raise ProtocolError("bad_request", f"at most {MAX_STYLE_IMAGES} style images")
    style_images = [
        Image.from_wire(s, limits, f"style_image[{i}]") for i, s in enumerate(raw_styles)
    ]
    mask = msg.get("mask")
    if mask is not None:
        mask = Image.from_wire(mask, limits, "mask")
        if mask.channels != 1 or mask.dtype != "u8":
            raise ProtocolError("bad_request", "mask must be 1 channel, dtype u8")
        if (mask.width, mask.height) != (image.width, image.height):
            raise ProtocolError(
                "bad_request",
                f"mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}",
            )
    params = check_params(msg.get("params"), METHOD_PARAMS[method], f"method {method!r}")
    if method == "fast":
        if style is None:
            raise ProtocolError("bad_request", "method 'fast' needs a style name")
        if style_images:
            raise ProtocolError(
                "bad_request", "method 'fast' takes a style name, not a style_image; "
                "use method 'gatys' to paint like an arbitrary picture",
            )
    else:
        if not style_images:
            raise ProtocolError("bad_request", "method 'gatys' needs style_image")
        weights = params.get("style_weights")
        if weights is not None and len(weights) != len(style_images):
            raise ProtocolError(
                "bad_parameter",
                f"params.style_weights has {len(weights)} entries for "
                f"{len(style_images)} style images",
            )
        if weights is not None and not any(w > 0 for w in weights):
            raise ProtocolError("bad_parameter", "params.style_weights needs a positive weight")
        if params.get("init") == "fast" and not (params.get("init_style") or style):
            raise ProtocolError("bad_parameter", "init 'fast' needs params.init_style or style")
    return StylizeRequest(image, method, style, style_images, mask, params)


def parse_train(msg: Mapping[str, Any], limits: Limits | None = None) -> TrainRequest:
    limits = limits or Limits()
    name = check_style_name(msg.get("name"), "name")
    style_image = Image.from_wire(msg.get("style_image"), limits, "style_image")
    params = check_params(msg.get("params"), TRAIN_PARAMS, "train")
    if "dataset" not in params:
        raise ProtocolError("bad_parameter", "train needs params.dataset (a folder of photos)")
    if not os.path.isabs(params["dataset"]):
        raise ProtocolError(
            "bad_parameter",
            f"params.dataset must be an absolute folder path on the daemon's machine, "
            f"not {params['dataset']!r}",
        )
    overwrite = msg.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ProtocolError("bad_request", "overwrite must be true or false")
    return TrainRequest(name, style_image, params, overwrite)


def parse_cancel(msg: Mapping[str, Any]) -> str:
    job_id = msg.get("job_id")
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
        raise ProtocolError("bad_request", "cancel needs job_id (a string)")
    return job_id
