"""The wire protocol: envelope, images, request validation, error codes, the typed
messages and their parameters (whose ranges and defaults match the engine's)."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nst_core.errors
from nst_client import protocol
from nst_client.errors import ErrorCode, ProtocolError
from nst_client.params import FastParams, TrainParams
from nst_client.protocol import Cancel, Image, Limits, StylizeRequest, TrainRequest


def rgb(width: int = 4, height: int = 3) -> Image:
    return Image(width, height, 3, bytes(width * height * 3))


def stylize_msg(**fields: object) -> dict:
    base = {"image": rgb().to_wire(), "method": "fast", "style": "candy"}
    base.update(fields)
    return protocol.make_request("stylize", **base)


def code_of(fn, *args) -> str:
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    assert info.value.message  # every refusal says why
    return info.value.code


def test_error_codes_cover_the_engine():
    engine_codes = {
        cls.code
        for cls in vars(nst_core.errors).values()
        if isinstance(cls, type) and issubclass(cls, nst_core.errors.NSTError)
    }
    required = {
        "bad_request",
        "unsupported_version",
        "too_large",
        "busy",
        "forbidden",
        "daemon_unavailable",
        "timeout",
        "internal",
    }
    assert engine_codes | required <= {code.value for code in ErrorCode}


def test_image_round_trip_through_msgpack():
    image = Image(3, 2, 4, bytes(range(24)))
    back = Image.from_wire(protocol.decode(protocol.encode(image.to_wire())))
    assert back == image


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        ({"width": 2, "height": 2, "channels": 3, "data": bytes(11)}, "bad_request"),
        (
            {"width": 2, "height": 2, "channels": 3, "dtype": "u16", "data": bytes(12)},
            "bad_request",
        ),
        ({"width": 2, "height": 2, "channels": 5, "data": bytes(20)}, "bad_request"),
        ({"width": 0, "height": 2, "channels": 3, "data": b""}, "bad_request"),
        ({"width": True, "height": 1, "channels": 3, "data": bytes(3)}, "bad_request"),
        ({"width": 2.0, "height": 1, "channels": 3, "data": bytes(6)}, "bad_request"),
        (
            {"width": 2, "height": 2, "channels": 3, "dtype": "f64", "data": bytes(96)},
            "bad_request",
        ),
        ({"width": 2, "height": 2, "channels": 3, "data": "text"}, "bad_request"),
        ({"width": 60000, "height": 60000, "channels": 3, "data": b""}, "too_large"),
        ([1, 2, 3], "bad_request"),
    ],
)
def test_bad_images_are_refused(wire, code):
    assert code_of(Image.from_wire, wire) == code


def test_pixel_limit_is_configurable():
    image = rgb(10, 10).to_wire()
    assert code_of(Image.from_wire, image, Limits(max_pixels=99)) == "too_large"
    assert Image.from_wire(image, Limits(max_pixels=100)).width == 10


def test_envelope():
    assert protocol.check_envelope(protocol.make_request("hello")) == "hello"
    msg = protocol.make_request("hello")
    assert code_of(protocol.check_envelope, {**msg, "v": [2, 0]}) == "unsupported_version"
    assert protocol.check_envelope({**msg, "v": [1, 7]}) == "hello"  # newer minor is fine
    assert code_of(protocol.check_envelope, {**msg, "v": "1.0"}) == "bad_request"
    assert code_of(protocol.check_envelope, {**msg, "id": 5}) == "bad_request"
    assert code_of(protocol.check_envelope, {**msg, "id": "x" * 65}) == "bad_request"
    assert code_of(protocol.check_envelope, {**msg, "type": "format_disk"}) == "bad_request"


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x93\x01\x02\x03", msgpack.packb(5)])
def test_decode_refuses_non_maps(payload):
    assert code_of(protocol.decode, payload) == "bad_request"


def test_valid_stylize_request():
    mask = Image(4, 3, 1, bytes(12))
    request = StylizeRequest.from_wire(
        stylize_msg(
            mask=mask.to_wire(),
            params={"strength": 0.5, "max_size": 512, "preserve_colors": None},
        )
    )
    assert request.style == "candy" and request.mask == mask
    assert request.params == FastParams(strength=0.5, max_size=512, preserve_colors=None)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"style": "../../etc/passwd"}, "bad_parameter"),
        ({"style": "/home/u/model.pth"}, "bad_parameter"),
        ({"style": "a\\b"}, "bad_parameter"),
        ({"style": ".hidden"}, "bad_parameter"),
        ({"style": "x" * 65}, "bad_parameter"),
        ({"style": 7}, "bad_request"),
        ({"style": None}, "bad_request"),
        ({"method": "deepdream"}, "bad_parameter"),
        ({"params": {"strength": math.nan}}, "bad_parameter"),
        ({"params": {"strength": math.inf}}, "bad_parameter"),
        ({"params": {"strength": 1.5}}, "bad_parameter"),
        ({"params": {"strength": "1"}}, "bad_parameter"),
        ({"params": {"max_size": 2.5}}, "bad_parameter"),
        ({"params": {"iterations": 10}}, "bad_parameter"),  # a gatys parameter
        ({"params": {"colour": 1}}, "bad_parameter"),
        ({"params": [1]}, "bad_request"),
        ({"mask": Image(4, 3, 3, bytes(36)).to_wire()}, "bad_request"),
        ({"mask": Image(5, 3, 1, bytes(15)).to_wire()}, "bad_request"),
        ({"style_image": rgb().to_wire()}, "bad_request"),
        ({"image": None}, "bad_request"),
    ],
)
def test_bad_stylize_requests(fields, code):
    assert code_of(StylizeRequest.from_wire, stylize_msg(**fields)) == code


def test_gatys_requests():
    ok = stylize_msg(
        method="gatys",
        style=None,
        style_image=[rgb().to_wire()] * 2,
        params={"iterations": 5, "style_weights": [1, 0.5], "quality": "draft"},
    )
    request = StylizeRequest.from_wire(ok)
    assert len(request.style_images) == 2 and request.params.style_weights == (1.0, 0.5)
    for fields in (
        {"style_image": None},
        {"style_image": [rgb().to_wire()], "params": {"style_weights": [1, 2]}},
        {"style_image": [rgb().to_wire()], "params": {"iterations": -3}},
        {"style_image": [rgb().to_wire()], "params": {"style_strength": -math.inf}},
        {"style_image": [rgb().to_wire()], "params": {"init": "fast"}},
        {"style_image": [rgb().to_wire()], "params": {"init_style": "../x"}},
    ):
        msg = stylize_msg(method="gatys", style=None, **fields)
        assert code_of(StylizeRequest.from_wire, msg) in ("bad_request", "bad_parameter")


def test_train_and_cancel_requests():
    msg = protocol.make_request(
        "train",
        name="my-style",
        style_image=rgb().to_wire(),
        params={"dataset": "/photos", "steps": 10},
    )
    assert TrainRequest.from_wire(msg).params == TrainParams(dataset="/photos", steps=10)
    assert code_of(TrainRequest.from_wire, {**msg, "name": "../evil"}) == "bad_parameter"
    assert code_of(TrainRequest.from_wire, {**msg, "params": {"steps": 10}}) == "bad_parameter"
    assert code_of(Cancel.from_wire, {"job_id": 3}) == "bad_request"


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text(max_size=8)
        | st.binary(max_size=16),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "v",
                        "id",
                        "type",
                        "image",
                        "style",
                        "method",
                        "params",
                        "mask",
                        "width",
                        "data",
                    ]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=20,
    )
)
def test_hostile_messages_only_raise_protocol_errors(obj):
    payload = msgpack.packb(obj, use_bin_type=True)
    try:
        msg = protocol.decode(payload)
        msg.setdefault("v", [1, 0])
        msg.setdefault("id", "x")
        StylizeRequest.from_wire(msg)
    except ProtocolError as exc:
        assert exc.code in list(ErrorCode)
