"""The wire protocol 1.x: every request and reply as a frozen dataclass.

One msgpack map per ZeroMQ frame. Clients use a DEALER socket and send ``[payload]``;
the daemon's ROUTER socket sees ``[identity, payload]``. Every message carries
``"v": [major, minor]``, ``"id"`` (the request id, a string; replies repeat it) and
``"type"``; its other keys are the fields of its dataclass (``docs/protocol.md`` shows
each with examples). ``to_wire(rid)`` gives the map, ``from_wire(map)`` builds the
object: requests are checked strictly (what the daemon accepts), replies leniently
(missing fields take their defaults, unknown ones are ignored, so a client works with
an older or newer 1.x daemon).

Standard library and msgpack only: the GIMP plug-in vendors this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from .errors import DaemonError, ProtocolError
from .params import (
    MAX_ID_LENGTH,
    MAX_STYLE_IMAGES,
    METHOD_PARAMS,
    METHODS,
    FastParams,
    GatysParams,
    TrainParams,
    check_style_name,
    is_int,
)
from .wire import (
    CLIENT_SILENCE_S,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    PING_INTERVAL_S,
    PROTOCOL_VERSION,
    Image,
    Limits,
    Message,
    Record,
    decode,
    default_endpoint,
    encode,
    make_request,
    read_image,
    read_image_or_none,
    records,
    request_id,
    tuple_of,
    wire,
)

__all__ = [
    "CLIENT_SILENCE_S",
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "PING_INTERVAL_S",
    "PROTOCOL_VERSION",
    "REPLIES",
    "REQUESTS",
    "REQUEST_TYPES",
    "Accepted",
    "Cancel",
    "Error",
    "Heartbeat",
    "Hello",
    "HelloRequest",
    "Image",
    "JobEvent",
    "JobInfo",
    "Limits",
    "ModelsInfo",
    "Ok",
    "PingRequest",
    "Progress",
    "Reply",
    "Request",
    "Result",
    "ShutdownRequest",
    "Status",
    "StatusRequest",
    "StyleEntry",
    "Styles",
    "StylesRequest",
    "StylizeRequest",
    "TrainRequest",
    "check_envelope",
    "decode",
    "default_endpoint",
    "encode",
    "make_request",
    "parse_reply",
    "parse_request",
    "request_id",
]


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class HelloRequest(Message):
    TYPE: ClassVar[str] = "hello"


@dataclass(frozen=True)
class StylesRequest(Message):
    TYPE: ClassVar[str] = "styles"


@dataclass(frozen=True)
class StatusRequest(Message):
    TYPE: ClassVar[str] = "status"


@dataclass(frozen=True)
class PingRequest(Message):
    TYPE: ClassVar[str] = "ping"


@dataclass(frozen=True)
class ShutdownRequest(Message):
    TYPE: ClassVar[str] = "shutdown"


@dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    job_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not self.job_id or len(self.job_id) > MAX_ID_LENGTH:
            raise ProtocolError("bad_request", "cancel needs job_id (a string)")

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any], limits: Limits | None = None) -> Self:
        return cls(msg.get("job_id"))  # type: ignore[arg-type]  # checked in __post_init__


def _image_list(obj: object, limits: Limits) -> tuple[Image, ...]:
    if obj is None:
        obj = []
    elif not isinstance(obj, list | tuple):
        obj = [obj]
    if len(obj) > MAX_STYLE_IMAGES:
        raise ProtocolError("bad_request", f"at most {MAX_STYLE_IMAGES} style images")
    return tuple(Image.from_wire(s, limits, f"style_image[{i}]") for i, s in enumerate(obj))


@dataclass(frozen=True)
class StylizeRequest(Message):
    """Stylise ``image``: with a catalogue ``style`` (``FastParams``), or like the
    ``style_images`` (``GatysParams``); the params' type is the method. Checked when
    built (the daemon and in-process callers refuse the same requests)."""

    TYPE: ClassVar[str] = "stylize"
    image: Image = wire()
    style: str | None = None
    style_images: tuple[Image, ...] = ()
    mask: Image | None = None
    params: FastParams | GatysParams = wire(factory=FastParams)

    @property
    def method(self) -> str:
        return "gatys" if isinstance(self.params, GatysParams) else "fast"

    def __post_init__(self) -> None:
        image, mask = self.image, self.mask
        if not isinstance(image, Image):
            raise ProtocolError("bad_request", "image must be a map")
        image.check()
        if self.style is not None:
            check_style_name(self.style)
        object.__setattr__(self, "style_images", tuple(self.style_images))
        if len(self.style_images) > MAX_STYLE_IMAGES:
            raise ProtocolError("bad_request", f"at most {MAX_STYLE_IMAGES} style images")
        for i, s in enumerate(self.style_images):
            s.check(what=f"style_image[{i}]")
        if mask is not None:
            mask.check(what="mask")
            if mask.channels != 1 or mask.dtype != "u8":
                raise ProtocolError("bad_request", "mask must be 1 channel, dtype u8")
            if (mask.width, mask.height) != (image.width, image.height):
                raise ProtocolError(
                    "bad_request",
                    f"mask is {mask.width}x{mask.height} but the image is "
                    f"{image.width}x{image.height}",
                )
        if isinstance(self.params, FastParams):
            if self.style is None:
                raise ProtocolError("bad_request", "method 'fast' needs a style name")
            if self.style_images:
                raise ProtocolError(
                    "bad_request",
                    "method 'fast' takes a style name, not a style_image; "
                    "use method 'gatys' to paint like an arbitrary picture",
                )
            return
        if not self.style_images:
            raise ProtocolError("bad_request", "method 'gatys' needs style_image")
        weights = self.params.style_weights
        if weights is not None and len(weights) != len(self.style_images):
            raise ProtocolError(
                "bad_parameter",
                f"params.style_weights has {len(weights)} entries for "
                f"{len(self.style_images)} style images",
            )
        if weights is not None and not any(w > 0 for w in weights):
            raise ProtocolError("bad_parameter", "params.style_weights needs a positive weight")
        if self.params.init == "fast" and not (self.params.init_style or self.style):
            raise ProtocolError("bad_parameter", "init 'fast' needs params.init_style or style")

    def check_limits(self, limits: Limits) -> StylizeRequest:
        """Refuse images over ``limits`` (``too_large``), as the daemon does."""
        self.image.check(limits, "image")
        for i, s in enumerate(self.style_images):
            s.check(limits, f"style_image[{i}]")
        if self.mask is not None:
            self.mask.check(limits, "mask")
        return self

    def fields_to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image.to_wire(), "method": self.method}
        if self.style is not None:
            out["style"] = self.style
        if self.style_images:
            out["style_image"] = [s.to_wire() for s in self.style_images]
        if self.mask is not None:
            out["mask"] = self.mask.to_wire()
        if params := self.params.to_wire():
            out["params"] = params
        return out

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any], limits: Limits | None = None) -> Self:
        limits = limits or Limits()
        method = msg.get("method", "fast")
        if method not in METHODS:
            raise ProtocolError("bad_parameter", f"unknown method {method!r}; use one of {METHODS}")
        image = Image.from_wire(msg.get("image"), limits, "image")
        style = msg.get("style")
        if style is not None:
            check_style_name(style)
        style_images = _image_list(msg.get("style_image"), limits)
        mask = msg.get("mask")
        if mask is not None:
            mask = Image.from_wire(mask, limits, "mask")
        params = METHOD_PARAMS[method].from_wire(msg.get("params"))
        return cls(image, style, style_images, mask, params)


@dataclass(frozen=True)
class TrainRequest(Message):
    """Train a fast-style model ``name`` from ``style_image``; ``overwrite`` may replace a
    user style of the same name, never a bundled one."""

    TYPE: ClassVar[str] = "train"
    name: str = ""
    style_image: Image = wire()
    params: TrainParams = wire()
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_style_name(self.name, "name")
        if not isinstance(self.style_image, Image):
            raise ProtocolError("bad_request", "style_image must be a map")
        self.style_image.check(what="style_image")
        if not isinstance(self.params, TrainParams):
            raise ProtocolError("bad_parameter", "train needs params.dataset (a folder of photos)")
        if not isinstance(self.overwrite, bool):
            raise ProtocolError("bad_request", "overwrite must be true or false")

    def check_limits(self, limits: Limits) -> TrainRequest:
        self.style_image.check(limits, "style_image")
        return self

    def fields_to_wire(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "style_image": self.style_image.to_wire(),
            "params": self.params.to_wire(),
        }
        return {**out, "overwrite": True} if self.overwrite else out

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any], limits: Limits | None = None) -> Self:
        name = check_style_name(msg.get("name"), "name")
        style_image = Image.from_wire(msg.get("style_image"), limits or Limits(), "style_image")
        params = TrainParams.from_wire(msg.get("params"))
        return cls(name, style_image, params, msg.get("overwrite", False))


Request = (
    HelloRequest
    | StylesRequest
    | StatusRequest
    | PingRequest
    | ShutdownRequest
    | Cancel
    | StylizeRequest
    | TrainRequest
)
REQUESTS: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (
        HelloRequest,
        StylesRequest,
        StylizeRequest,
        Cancel,
        StatusRequest,
        TrainRequest,
        PingRequest,
        ShutdownRequest,
    )
}
REQUEST_TYPES = tuple(REQUESTS)


def check_envelope(msg: Mapping[str, Any]) -> str:
    """Validate ``v``, ``id`` and ``type``; returns the type."""
    v = msg.get("v")
    if not isinstance(v, list | tuple) or len(v) != 2 or not all(is_int(x) for x in v):
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
    if kind not in REQUESTS:
        raise ProtocolError(
            "bad_request", f"unknown message type {kind!r}; known: {list(REQUESTS)}"
        )
    return kind


def parse_request(msg: Mapping[str, Any], limits: Limits | None = None) -> Request:
    """Check the envelope and build the request (``ProtocolError`` when refused)."""
    return REQUESTS[check_envelope(msg)].from_wire(msg, limits)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Heartbeat(Record):
    ping_interval_s: float = PING_INTERVAL_S
    client_silence_s: float = CLIENT_SILENCE_S


@dataclass(frozen=True)
class Hello(Message):
    """Who the daemon is: versions, device, what it can do, its limits."""

    TYPE: ClassVar[str] = "hello"
    protocol: tuple[int, ...] = wire(PROTOCOL_VERSION, read=tuple_of)
    version: str = ""
    torch: str = ""
    device: str = ""
    capabilities: tuple[str, ...] = wire((), read=tuple_of)
    limits: Limits = wire(Limits(), read=Limits.read)
    heartbeat: Heartbeat = wire(Heartbeat(), read=Heartbeat.read)
    pid: int | None = None
    vgg_weights: dict[str, Any] | None = None  # nst_core.weights.weights_info


@dataclass(frozen=True)
class StyleEntry(Record):
    """One style of the catalogue, with a small RGB preview when the daemon has one;
    ``variants`` are its networks: ``("full",)``, or ``("full", "lite")`` where a lite one
    ships beside it (``FastParams.speed`` chooses; older daemons leave the field out)."""

    name: str = ""
    title: str = ""
    artist: str = ""
    year: str = ""
    licence: str = ""
    source: str = ""
    preview: Image | None = wire(read=read_image_or_none)  # a broken one is left out
    variants: tuple[str, ...] = wire(("full",), read=tuple_of)


@dataclass(frozen=True)
class Styles(Message):
    TYPE: ClassVar[str] = "styles"
    styles: tuple[StyleEntry, ...] = wire((), read=records(StyleEntry))


@dataclass(frozen=True)
class JobInfo(Record):
    """A running or queued job in a ``status`` reply."""

    job_id: str = ""
    method: str = ""
    state: str = ""  # queued | running | cancelling
    step: int | None = None
    total: int | None = None
    stage: str | None = None
    position: int | None = None  # queued jobs: how many run before it


@dataclass(frozen=True)
class ModelsInfo(Record):
    vgg: bool = False
    fast: tuple[str, ...] = wire((), read=tuple_of)  # names of the resident fast models
    style_targets: int = 0


@dataclass(frozen=True)
class Status(Message):
    TYPE: ClassVar[str] = "status"
    running: tuple[JobInfo, ...] = wire((), read=records(JobInfo))
    queue: tuple[JobInfo, ...] = wire((), read=records(JobInfo))
    device: str = ""
    memory: dict[str, int] = wire(factory=dict)  # CUDA bytes: allocated, reserved, free, total
    models: ModelsInfo = wire(ModelsInfo(), read=ModelsInfo.read)
    clients: int = 0
    uptime_s: float | None = None
    pid: int | None = None
    vgg_weights: dict[str, Any] | None = None


@dataclass(frozen=True)
class Accepted(Message):
    TYPE: ClassVar[str] = "accepted"
    job_id: str = ""
    position: int = 0  # queued jobs that run before this one


@dataclass(frozen=True)
class Progress(Message):
    TYPE: ClassVar[str] = "progress"
    job_id: str = ""
    step: int = 0
    total: int = 0
    stage: str = ""
    losses: dict[str, float] = wire(factory=dict)
    eta_s: float | None = None
    preview: Image | None = wire(read=read_image)


@dataclass(frozen=True)
class Result(Message):
    """The end of a job: the stylised ``image``, or a trained ``style`` and its ``path``;
    ``variant`` is the network of a fast-style job (``"full"`` or ``"lite"``; ``None`` for
    other jobs and from older daemons)."""

    TYPE: ClassVar[str] = "result"
    job_id: str = ""
    image: Image | None = wire(read=read_image)
    timings: dict[str, float] = wire(factory=dict)
    style: str | None = None
    path: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: str = "internal"
    message: str = ""
    job_id: str | None = None

    def exception(self) -> DaemonError:
        return DaemonError(self.code, self.message)


@dataclass(frozen=True)
class Ok(Message):
    TYPE: ClassVar[str] = "ok"
    job_id: str | None = None


Reply = Hello | Styles | Status | Accepted | Progress | Result | Error | Ok
JobEvent = Accepted | Progress | Result
REPLIES: dict[str, type[Reply]] = {
    cls.TYPE: cls for cls in (Hello, Styles, Status, Accepted, Progress, Result, Error, Ok)
}


def parse_reply(msg: Mapping[str, Any]) -> Reply:
    """A reply map as its dataclass (``ProtocolError`` for an unknown type)."""
    cls = REPLIES.get(msg.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError("bad_request", f"unknown reply type {msg.get('type')!r}")
    return cls.from_wire(msg)
