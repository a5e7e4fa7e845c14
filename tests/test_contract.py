"""The typed contract (``nst_client``): every message round-trips through its wire map
with the keys of protocol 1.0, the parameters' defaults and ranges are the engine's, the
wording covers every error code, and the plug-in's side never needs torch or the engine."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from nst_client import params, protocol, text
from nst_client.errors import DaemonError, DaemonUnavailable, ErrorCode, ProtocolError
from nst_client.params import FastParams, GatysParams, TrainParams
from nst_client.protocol import (
    Accepted,
    Cancel,
    Error,
    Hello,
    HelloRequest,
    Image,
    JobInfo,
    ModelsInfo,
    Ok,
    PingRequest,
    Progress,
    Result,
    ShutdownRequest,
    Status,
    StatusRequest,
    StyleEntry,
    Styles,
    StylesRequest,
    StylizeRequest,
    TrainRequest,
)

REPO = Path(__file__).resolve().parents[1]
PIXELS = Image(2, 2, 3, bytes(range(12)))


def through_the_wire(msg: protocol.Message) -> dict:
    return protocol.decode(protocol.encode(msg.to_wire("r1")))


REQUESTS = [
    HelloRequest(),
    StylesRequest(),
    StatusRequest(),
    PingRequest(),
    ShutdownRequest(),
    Cancel("j3"),
    StylizeRequest(
        PIXELS,
        "candy",
        mask=Image(2, 2, 1, bytes(4)),
        params=FastParams(strength=0.5, tile_size=512, clip="c1", clip_frame=2, speed="fast"),
    ),
    StylizeRequest(
        PIXELS,
        style_images=(PIXELS, PIXELS),
        params=GatysParams(
            iterations=5, style_weights=(1.0, 0.5), init="fast", init_style="candy", quality="draft"
        ),
    ),
    TrainRequest("mine", PIXELS, TrainParams(dataset="/photos", steps=10), overwrite=True),
]
REPLIES = [
    Hello(
        (1, 0),
        "0.1.0",
        "2.5",
        "cpu",
        ("fast", "gatys"),
        protocol.Limits(100, 1000),
        pid=7,
        vgg_weights={"source": "bundled", "name": "VGG16"},
    ),
    Styles(
        (
            StyleEntry("candy", "Candy", "", "", "", "bundled", PIXELS, ("full", "lite")),
            StyleEntry("x"),
        )
    ),
    Status(
        (JobInfo("j1", "gatys", "running", 3, 10, "refining"),),
        (JobInfo("j2", "fast", "queued", position=0),),
        "cpu",
        {},
        ModelsInfo(True, ("a",), 2),
        2,
        61.5,
        7,
        None,
    ),
    Accepted("j1", 2),
    Progress("j1", 3, 10, "refining", {"style": 1.5}, 4.0, PIXELS),
    Result("j1", PIXELS, {"total_s": 0.5}),
    Result("j2", PIXELS, {"total_s": 0.2}, variant="lite"),
    Result("j4", None, {"total_s": 9.0}, style="mine", path="/styles/mine.safetensors"),
    Error("busy", "the queue is full", "j1"),
    Ok("j1"),
    Ok(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip(request_: protocol.Message) -> None:
    wire = through_the_wire(request_)
    assert (wire["v"], wire["id"], wire["type"]) == ([1, 0], "r1", request_.TYPE)
    assert protocol.parse_request(wire) == request_


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_replies_round_trip(reply: protocol.Message) -> None:
    assert protocol.parse_reply(through_the_wire(reply)) == reply


def test_the_wire_keys_are_those_of_protocol_1_0() -> None:
    stylize = REQUESTS[6].to_wire()
    assert set(stylize) == {"v", "id", "type", "image", "method", "style", "mask", "params"}
    assert stylize["params"] == {
        "strength": 0.5,
        "tile_size": 512,
        "clip": "c1",
        "clip_frame": 2,
        "speed": "fast",
    }  # defaults are left out
    assert "speed" not in FastParams(speed="auto").to_wire()  # "auto": an older daemon's way
    gatys = REQUESTS[7].to_wire()
    assert gatys["method"] == "gatys" and len(gatys["style_image"]) == 2 and "style" not in gatys
    assert gatys["params"]["style_weights"] == [1.0, 0.5]  # a list, as msgpack sends it
    train = REQUESTS[8].to_wire()
    assert set(train) == {"v", "id", "type", "name", "style_image", "params", "overwrite"}
    assert "overwrite" not in TrainRequest("mine", PIXELS, TrainParams(dataset="/p")).to_wire()
    status = REPLIES[2].to_wire()
    assert status["running"][0] == {
        "job_id": "j1",
        "method": "gatys",
        "state": "running",
        "step": 3,
        "total": 10,
        "stage": "refining",
    }
    assert status["queue"][0]["position"] == 0 and status["models"]["vgg"] is True
    hello = REPLIES[0].to_wire()
    assert hello["limits"] == {"max_pixels": 100, "max_message_bytes": 1000}
    assert hello["protocol"] == [1, 0] and hello["heartbeat"]["ping_interval_s"] == 0.5
    assert Error("busy", "full").to_wire("r")["code"] == "busy"
    styles = REPLIES[1].to_wire()
    assert styles["styles"][0]["variants"] == ["full", "lite"]
    assert styles["styles"][1]["variants"] == ["full"]
    assert REPLIES[6].to_wire()["variant"] == "lite"
    assert "variant" not in REPLIES[5].to_wire() and "variant" not in REPLIES[7].to_wire()
    assert "job_id" not in Error("busy", "full").to_wire("r")


def test_an_older_or_newer_daemons_replies_are_read() -> None:
    """Missing fields take their defaults, unknown ones are ignored."""
    hello = protocol.parse_reply({"type": "hello", "protocol": [1, 0], "new_field": {"x": 1}})
    assert isinstance(hello, Hello) and hello.limits == protocol.Limits()
    status = protocol.parse_reply({"type": "status", "running": [{"job_id": "j1"}]})
    assert isinstance(status, Status) and status.running[0].state == ""
    assert status.models == ModelsInfo() and status.vgg_weights is None
    # an older daemon: no variants (its styles have the full network only), no variant
    styles = protocol.parse_reply({"type": "styles", "styles": [{"name": "candy"}]})
    assert isinstance(styles, Styles) and styles.styles[0].variants == ("full",)
    result = protocol.parse_reply({"type": "result", "job_id": "j1", "timings": {}})
    assert isinstance(result, Result) and result.variant is None
    assert StyleEntry().variants == ("full",) and FastParams().speed == "auto"
    for malformed in (
        {"type": "teapot"},
        {"type": "status", "running": 5},
        {"type": "styles", "styles": [7]},
        {"type": "progress", "preview": "x"},
    ):
        with pytest.raises(ProtocolError):
            protocol.parse_reply(malformed)


def test_requests_are_checked_when_built_as_on_the_wire() -> None:
    """In-process callers build requests; the checks are the daemon's."""
    for build in (
        lambda: StylizeRequest(PIXELS),  # fast without a style
        lambda: StylizeRequest(PIXELS, "../x"),
        lambda: StylizeRequest(PIXELS, style_images=(PIXELS,), params=GatysParams(init="fast")),
        lambda: StylizeRequest(PIXELS, "candy", style_images=(PIXELS,)),
        lambda: FastParams(strength=1.5),
        lambda: FastParams(max_size=2.5),  # type: ignore[arg-type]
        lambda: FastParams(speed="turbo"),
        lambda: GatysParams(style_weights=()),
        lambda: TrainParams(dataset="photos"),
        lambda: StylizeRequest(Image(2, 2, 3, bytes(11)), "candy"),
        lambda: TrainRequest("mine", Image(2, 2, 3, bytes(11)), TrainParams(dataset="/p")),
        lambda: Cancel(""),
    ):
        with pytest.raises(ProtocolError) as info:
            build()
        assert info.value.code in ("bad_request", "bad_parameter") and info.value.message
    big = StylizeRequest(Image(20, 20, 3, bytes(1200)), "candy")
    with pytest.raises(ProtocolError) as info:
        big.check_limits(protocol.Limits(max_pixels=399))
    assert info.value.code == "too_large"
    assert big.check_limits(protocol.Limits(max_pixels=400)) is big


def test_parameter_defaults_and_ranges_are_the_engines() -> None:
    from nst_core import fast, gatys, motion, styles, train

    engine = gatys.GatysParams()
    ours = GatysParams()
    for name in (
        "style_strength",
        "style_scale",
        "optimizer",
        "init",
        "seed",
        "preview_every",
        "preserve_colors",
    ):
        assert getattr(ours, name) == getattr(engine, name), name
    assert ours.iterations is None  # the quality preset's, which the engine knows
    assert ours.quality == inspect.signature(gatys.GatysParams.preset).parameters["quality"].default
    assert set(params.QUALITIES) == set(gatys.QUALITY_PRESETS)
    assert params.MIN_TILE_SIZE == fast.MIN_TILE
    assert set(params.CONSISTENCIES) == set(motion.PRESETS)
    assert params.SPEEDS == styles.SPEEDS  # nst_core.styles.choose_variant's rule
    assert motion.consistency_of(FastParams().consistency) == motion.consistency_of(None)
    lo, hi = params.STYLE_SCALE  # the engine refuses just outside the protocol's range
    for scale, ok in ((lo, True), (hi, True), (lo * 0.99, False), (hi * 1.01, False)):
        if ok:
            gatys.GatysParams(style_scale=scale).validate()
        else:
            with pytest.raises(Exception, match="style_scale"):
                gatys.GatysParams(style_scale=scale).validate()
    config = {f.name: f.default for f in dataclasses.fields(train.TrainConfig)}
    for f in dataclasses.fields(TrainParams):
        if f.name != "dataset":
            assert f.default == config[f.name], f.name
    assert set(TrainParams(dataset="/p").engine_options()) <= set(config)


def test_every_error_code_has_wording() -> None:
    assert set(text.ERRORS) == set(ErrorCode)
    assert all(w.meaning for w in text.ERRORS.values())
    assert text.cli_hint("unknown_style") and text.cli_hint("no_such_code") is None
    assert (
        text.describe_error(DaemonError("newer_code", "details")) == "Neural Style failed: details"
    )
    assert "stopped during the job" in text.describe_error(DaemonUnavailable("x", True))


def test_status_is_worded_for_the_terminal() -> None:
    status = REPLIES[2]
    assert isinstance(status, Status)
    report = text.status_report("tcp://127.0.0.1:1", status)
    assert "j1 gatys running 3/10 (refining)" in report and "j2 fast queued" in report
    assert "VGG loaded; fast styles: a" in report and "clients  2" in report
    assert "weights" not in report  # this status did not say


# A meta-path finder that refuses torch and the engine: what the plug-in's GIMP Python has.
BLOCKED = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "nst_core", "nst_daemon", "numpy"):
            raise ImportError(f"{name} is not available here")
        return None
sys.meta_path.insert(0, Blocked())
sys.path.insert(0, sys.argv[1])
"""

PLUGIN_SIDE = (
    BLOCKED
    + """
import nst_client, nst_client.client, nst_client.names, nst_client.params
import nst_client.protocol, nst_client.text, nst_client.wire, nst_client.errors
import daemon_link, daemon_status, regions
from nst_client.client import Client
from nst_client.protocol import Image, StylizeRequest
request = StylizeRequest(Image(1, 1, 3, bytes(3)), "candy")
client = Client("tcp://127.0.0.1:1", autostart=False)
client.close()
print(daemon_link.status_text(None))
assert tuple(c[0] for c in daemon_link.SPEED_CHOICES) == nst_client.params.SPEEDS
loaded = {m.split(".")[0] for m, v in sys.modules.items() if v}
assert not loaded & {"torch", "nst_core", "nst_daemon", "numpy"}, loaded
"""
)


def test_the_plugin_side_needs_neither_torch_nor_the_engine() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PLUGIN_SIDE, str(REPO / "gimp_plugin")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "not running" in done.stdout


def test_the_blocker_blocks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED + "import nst_core.errors\n", "."],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode != 0 and "not available here" in done.stderr
