"""The encoding of protocol 1.x: msgpack frames, the envelope, images, and the generic
serialisation of the message dataclasses (``nst_client.protocol`` defines them).

A record's fields are its map's keys (``None`` values left out); ``wire(read=...)``
names how a field's wire value becomes its type. Standard library and msgpack only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import msgpack

from .errors import ProtocolError
from .params import MAX_ID_LENGTH, MAX_SIDE, Params

PROTOCOL_VERSION: tuple[int, int] = (1, 0)
DEFAULT_ENDPOINT = "tcp://127.0.0.1:47811"

# Liveness: a client waiting for a job sends ``ping`` every PING_INTERVAL_S; the daemon
# cancels the jobs of a client it has not heard from for CLIENT_SILENCE_S, or for two
# ping intervals once the client's connection has been reported closed.
PING_INTERVAL_S = 0.5
CLIENT_SILENCE_S = 4.0

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30  # 1 GiB: an 8000 x 8000 RGBA u16 layer fits
DTYPE_SIZES = {"u8": 1, "u16": 2, "f32": 4}


def default_endpoint() -> str:
    """``$NST_ENDPOINT`` or ``tcp://127.0.0.1:47811``."""
    return os.environ.get("NST_ENDPOINT") or DEFAULT_ENDPOINT


def new_id() -> str:
    return uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------- records


def to_wire_value(value: Any) -> Any:
    """A field's value as msgpack takes it (records and images as maps, tuples as lists)."""
    if isinstance(value, Record | Image | Params):
        return value.to_wire()
    if isinstance(value, list | tuple):
        return [to_wire_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire_value(v) for k, v in value.items()}
    return value


def wire(
    default: Any = None,
    *,
    read: Callable[[Any], Any] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A field of a record; ``read`` turns its wire value into the field's type."""
    metadata = {"read": read} if read is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Record:
    """A map on the wire whose keys are the dataclass's fields; ``None`` values are left out."""

    def to_wire(self) -> dict[str, Any]:
        return {
            f.name: to_wire_value(v)
            for f in fields(self)
            if (v := getattr(self, f.name)) is not None
        }

    @classmethod
    def read(cls, obj: object) -> Self:
        """Lenient: missing or null fields take their defaults, unknown keys are ignored."""
        if not isinstance(obj, Mapping):
            raise ProtocolError("bad_request", f"a {cls.__name__} must be a map")
        kwargs: dict[str, Any] = {}
        try:
            for f in fields(cls):
                value = obj.get(f.name)
                if value is not None:
                    convert = f.metadata.get("read")
                    kwargs[f.name] = convert(value) if convert is not None else value
            return cls(**kwargs)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError("bad_request", f"malformed {cls.__name__}: {exc}") from None


def records(cls: type[Record]) -> Callable[[Any], tuple[Any, ...]]:
    return lambda items: tuple(cls.read(item) for item in items)


def tuple_of(items: Any) -> tuple[Any, ...]:
    return tuple(items)


@dataclass(frozen=True)
class Limits(Record):
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


UNLIMITED = Limits(2**62, 2**62)  # what a client accepts from its daemon


def _map(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ProtocolError("bad_request", f"{what} must be a map")
    return obj


def _int_field(m: Mapping[str, Any], key: str, what: str, lo: int, hi: int) -> int:
    x = m.get(key)
    if not isinstance(x, int) or isinstance(x, bool) or not lo <= x <= hi:
        raise ProtocolError("bad_request", f"{what}.{key} must be an integer in {lo}..{hi}")
    return x


def check_image(obj: object, limits: Limits, what: str = "image") -> Mapping[str, Any]:
    """Check an image map: types, sizes, the pixel limit (``too_large``), data length."""
    m = _map(obj, what)
    width = _int_field(m, "width", what, 1, MAX_SIDE)
    height = _int_field(m, "height", what, 1, MAX_SIDE)
    channels = _int_field(m, "channels", what, 1, 4)
    dtype = m.get("dtype", "u8")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise ProtocolError(
            "bad_request", f"{what}.dtype must be one of {list(DTYPE_SIZES)}, not {dtype!r}"
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
    expected = width * height * channels * DTYPE_SIZES[dtype]
    size = memoryview(data).nbytes
    if size != expected:
        raise ProtocolError(
            "bad_request",
            f"{what}.data has {size:,} bytes; {width}x{height}x{channels} {dtype} "
            f"needs {expected:,}",
        )
    return m


@dataclass(frozen=True)
class Image:
    """Raw interleaved pixels: channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Checked by
    ``from_wire`` and by the requests that carry it (``check``)."""

    width: int
    height: int
    channels: int
    data: bytes
    dtype: str = "u8"

    def check(self, limits: Limits = UNLIMITED, what: str = "image") -> Image:
        """Refuse a malformed image (``bad_request``) or one over ``limits``
        (``too_large``), as the daemon does."""
        check_image(self.to_wire(), limits, what)
        return self

    def to_wire(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "dtype": self.dtype,
            "data": bytes(self.data),
        }

    @classmethod
    def from_wire(cls, obj: object, limits: Limits | None = None, what: str = "image") -> Image:
        """Check a wire map (types, sizes, data length) and build an ``Image``."""
        if isinstance(obj, Image):
            obj = obj.to_wire()
        m = check_image(obj, limits or Limits(), what)
        return cls(m["width"], m["height"], m["channels"], bytes(m["data"]), m.get("dtype", "u8"))


def read_image(obj: object) -> Image:
    return Image.from_wire(obj, UNLIMITED)


def read_image_or_none(obj: object) -> Image | None:
    """An optional picture (a style's thumbnail): ``None`` when it cannot be read."""
    try:
        return read_image(obj)
    except ProtocolError:
        return None


# --------------------------------------------------------------------------- envelope


def encode(msg: Mapping[str, Any]) -> bytes:
    payload = msgpack.packb(msg, use_bin_type=True)
    assert isinstance(payload, bytes)
    return payload


def decode(payload: bytes | memoryview) -> dict[str, Any]:
    """Parse one frame into a message map (the envelope is checked by ``check_envelope``).

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


def make_request(kind: str, **fields: Any) -> dict[str, Any]:
    """A raw request map with version and a fresh id; ``None`` fields are left out (for
    messages that no dataclass would build, such as a test's malformed ones)."""
    msg: dict[str, Any] = {"v": list(PROTOCOL_VERSION), "id": new_id(), "type": kind}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


@dataclass(frozen=True)
class Message(Record):
    """A request or reply: its fields plus the envelope (``v``, ``id``, ``type``)."""

    TYPE: ClassVar[str] = ""

    def to_wire(self, rid: str | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The message map; ``rid`` is the request id (a fresh one when ``None``)."""
        return {
            "v": list(PROTOCOL_VERSION),
            "id": new_id() if rid is None else rid,
            "type": self.TYPE,
            **self.fields_to_wire(),
        }

    def fields_to_wire(self) -> dict[str, Any]:
        return super().to_wire()

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any], limits: Limits | None = None) -> Self:
        return cls.read(msg)
