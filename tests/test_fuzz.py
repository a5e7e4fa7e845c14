"""Hostile input against a real daemon: over 10,000 malformed messages, pipelined.

Messages come from hypothesis strategies (wrong types, missing fields, impossible sizes,
data of the wrong length, NaN parameters, unknown methods, path-like style names...),
from raw random bytes and from bit flips and truncations of a valid request. Each one
must get exactly one final reply (an error unless it happens to be a valid request),
never ``internal``; frames over the size limit are dropped. Meanwhile another client's
valid jobs must keep coming back with exactly the pixels an in-process run computes,
and a valid model file outside the data dir, named by path in many ways, is never
loaded (its pictures would be solid magenta; the daemon's loaded models are checked).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgpack
import pytest
import torch
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nst_client import protocol
from nst_client.errors import DaemonError, ErrorCode, ProtocolError
from nst_client.params import CommonParams, GatysParams, TrainParams
from nst_client.protocol import Image, StylizeRequest
from nst_core.transformer_net import save_style_model

from daemon_helpers import (
    DaemonProcess,
    dealer,
    noise_image,
    random_net,
    reference_results,
    save_random_style,
    stylize_request,
)

FINAL = {"hello", "styles", "status", "ok", "result", "error"}
SENTINEL = "SENTINEL-OUTSIDE"
MAX_MESSAGE_MB = 1
FUZZ_SOCKETS = 4
FAST_JOBS, GATYS_JOBS = 400, 100  # parameter fuzz: well-formed jobs, sent 4 in flight
PARAM_KINDS = {"fast-params", "gatys-params"}
FIGURES: dict[str, int] = {}  # printed with -s: the figures of docs/reliability.md


# --------------------------------------------------------------------------- strategies

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
bad_numbers = st.sampled_from(
    [
        0,
        -1,
        -(2**63),
        2**63 - 1,
        2**64 - 1,
        65_536,
        1e9,
        float("nan"),
        float("inf"),
        -0.0,
        2.5,
        True,
        "7",
        None,
    ]
)
sizes = st.integers(-3, 5) | st.integers(65_530, 2**40) | bad_numbers


@st.composite
def wrong_length_image(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible header whose data is shorter or longer than width*height*channels."""
    w, h, c = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(["u8", "u16", "f32"]))
    n = w * h * c * {"u8": 1, "u16": 2, "f32": 4}[dtype]
    delta = draw(st.integers(-n, 64).filter(lambda d: d != 0))
    return {"width": w, "height": h, "channels": c, "dtype": dtype, "data": bytes(n + delta)}


huge_claim = st.builds(
    lambda wh, c: {"width": wh[0], "height": wh[1], "channels": c, "data": b"\0" * 12},
    st.sampled_from([(10_000, 10_000), (20_000, 5_000), (65_535, 65_535), (9_000, 9_000)]),
    st.integers(1, 4),
)
tiny_valid = st.builds(
    lambda w, h, c: {
        "width": w,
        "height": h,
        "channels": c,
        "dtype": "u8",
        "data": bytes(range(w * h * c)),
    },
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 4),
)
random_header = st.fixed_dictionaries(
    {},
    optional={
        "width": sizes,
        "height": sizes,
        "channels": sizes | junk,
        "dtype": st.sampled_from(["u8", "f64", "", "U8", "u16 "]) | junk,
        "data": st.binary(max_size=64) | junk,
    },
)
images = wrong_length_image() | huge_claim | random_header | junk | tiny_valid


@st.composite
def valid_image(draw: st.DrawFn, max_side: int = 40) -> dict[str, Any]:
    """A well-formed image: 1 to ``max_side`` px, gray to RGBA, u8, u16 or f32 (whose
    random bytes include NaN, infinities and values outside [0, 1])."""
    w, h, c = (
        draw(st.integers(1, max_side)),
        draw(st.integers(1, max_side)),
        draw(st.integers(1, 4)),
    )
    dtype = draw(st.sampled_from(["u8", "u8", "u16", "f32"]))
    n = w * h * c * {"u8": 1, "u16": 2, "f32": 4}[dtype]
    seed = draw(st.integers(0, 2**32 - 1))
    return {
        "width": w,
        "height": h,
        "channels": c,
        "dtype": dtype,
        "data": random.Random(seed).randbytes(n),
    }


# the fast method's own parameters: valid values, edges of the ranges, and wrong ones
FAST_PARAMS = {
    "strength": st.floats(-0.5, 1.5)
    | st.sampled_from(
        [0, 1, 0.0, 1.0, -0.0, 0.5, 1e-300, float("nan"), float("inf"), True, "1", None]
    ),
    "preserve_colors": st.sampled_from(
        [
            None,
            "luminance",
            "histogram",
            "luminance",
            "histogram",
            "",
            "Luminance",
            0,
            True,
            ["luminance"],
            {"x": 1},
        ]
    ),
    "max_size": st.integers(0, 64)
    | st.sampled_from([None, 15, 16, 17, 2**31, 65_536, 16.0, -16, True, "32"]),
    "tile_size": st.integers(240, 300)
    | st.sampled_from([None, 0, 63, 64, 255, 256, 257, 1024, 16_384, 16_385, 256.0, False]),
    "seed": st.integers(-1, 2**64 - 1),  # msgpack carries at most 64-bit integers
}
# Gatys parameters; iterations are 1 or 2 when valid (the runs must stay short)
GATYS_FUZZ_PARAMS = {
    **FAST_PARAMS,
    "style_strength": st.sampled_from([0, 0.0, 1e-9, 0.5, 1, 1e6, 1e6 + 1, -1, float("nan")]),
    "style_scale": st.sampled_from([0.05, 0.049, 0.5, 1, 4, 4.01, 0, "1"]),
    "optimizer": st.sampled_from(["lbfgs", "adam", "LBFGS", "", None]),
    "init": st.sampled_from(["content", "noise", "fast", "", "photo"]),
    "init_style": st.sampled_from(["rand", "rand", "../rand", "", 7]),
    "quality": st.sampled_from(["draft", "balanced", "high", "best"]),
    "style_weights": st.lists(
        st.sampled_from([0.0, 1.0, 0.5, 2, 1e6, -1.0, float("nan")]), max_size=4
    )
    | st.sampled_from([None, 1.0, "1"]),
    "preview_every": st.sampled_from([0, 1, 2, -1, 1.5]),
}
GATYS_ITERATIONS = st.sampled_from([1, 2, 1, 2, 0, -1, 100_001, 2.0, True, None])


def fast_jobs() -> st.SearchStrategy[dict[str, Any]]:
    """Fast jobs on well-formed images whose parameters are fuzzed."""
    return st.fixed_dictionaries(
        {
            "type": st.just("stylize"),
            "image": valid_image(),
            "style": st.just("rand"),
            "params": st.fixed_dictionaries({}, optional=FAST_PARAMS),
        },
        optional={"method": st.just("fast")},
    )


def gatys_jobs() -> st.SearchStrategy[dict[str, Any]]:
    """Gatys jobs on well-formed images (1 to 3 styles) whose parameters are fuzzed; they
    reach the engine (the daemon has VGG weights, random ones)."""
    return st.fixed_dictionaries(
        {
            "type": st.just("stylize"),
            "method": st.just("gatys"),
            "image": valid_image(24),
            "style_image": valid_image(24) | st.lists(valid_image(24), min_size=1, max_size=3),
            "params": st.fixed_dictionaries(
                {"iterations": GATYS_ITERATIONS}, optional=GATYS_FUZZ_PARAMS
            ),
        },
        optional={"style": st.just("rand")},
    )


def capped(body: dict[str, Any]) -> dict[str, Any]:
    """A request whose Gatys run, if valid, takes at most 2 steps per scale (fuzzed
    requests may name up to 100,000 or leave the preset's hundreds)."""
    if body.get("method") != "gatys":
        return body
    params = body.get("params")
    if params is None:
        return {**body, "params": {"iterations": 2}}
    if isinstance(params, dict):
        n = params.get("iterations")
        if n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 2):
            return {**body, "params": {**params, "iterations": 2}}
    return body


def path_styles(outside: Path) -> st.SearchStrategy[str]:
    """Every way of naming the model file outside the data dir by its path."""
    target = outside / "sentinel"
    names = [
        str(target) + ".safetensors",
        str(target) + ".pth",
        str(target),
        "../outside/sentinel",
        "../../outside/sentinel.safetensors",
        "..",
        ".",
        "../",
        "..\\sentinel",
        "/etc/passwd",
        "./sentinel",
        "styles/../../outside/sentinel",
        "file://" + str(target) + ".safetensors",
        "~/sentinel",
        "sentinel",
        ".sentinel",
        "sentinel.safetensors/..",
        "%2e%2e%2fsentinel",
        "rand/../../outside/sentinel",
        "rand\0../outside",
        "C:\\sentinel.pth",
        "a" * 65,
        "",
    ]
    return st.sampled_from(names) | st.text(max_size=20)


def params(outside: Path) -> st.SearchStrategy[Any]:
    gatys_only = {f.name for f in fields(GatysParams)} - {f.name for f in fields(CommonParams)}
    names = sorted({*gatys_only, *(f.name for f in fields(TrainParams)), "bogus", ""})
    value = bad_numbers | junk | path_styles(outside)
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=8), value, max_size=4) | junk


def stylize(outside: Path) -> st.SearchStrategy[dict[str, Any]]:
    methods = st.sampled_from(["fast", "gatys", "FAST", "", "johnson", "../fast"]) | junk
    return st.fixed_dictionaries(
        {"type": st.just("stylize"), "image": images},
        optional={
            "method": methods,
            "style": path_styles(outside) | st.just("rand") | junk,
            "params": params(outside),
            "mask": images,
            "style_image": images | st.lists(images, max_size=10),
        },
    )


def train(outside: Path) -> st.SearchStrategy[dict[str, Any]]:
    """Train requests that can never be valid (their painting is never a valid image)."""
    bad_image = wrong_length_image() | huge_claim | junk
    return st.fixed_dictionaries(
        {"type": st.just("train"), "style_image": bad_image},
        optional={"name": path_styles(outside) | junk, "params": params(outside)},
    )


def other_requests(outside: Path) -> st.SearchStrategy[dict[str, Any]]:
    cancel = st.fixed_dictionaries(
        {"type": st.just("cancel")},
        optional={
            "job_id": (st.text(max_size=70) | junk).filter(
                lambda j: not (isinstance(j, str) and j.startswith("j"))
            )
        },
    )
    harmless = st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["hello", "status", "ping", "styles", "HELLO", "Shutdown", "kill", "", "stylize "]
            )
        },
        optional={"extra": junk, "style": path_styles(outside)},
    )
    return cancel | harmless


bad_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from(
            [[2, 0], [0, 1], [1], [1, 0, 0], "1.0", [True, False], [1.0, 0.0], None]
        )
        | junk,
        "id": st.sampled_from(["", "x" * 65, 7, None, b"id"]) | junk,
        "type": st.sampled_from(protocol.REQUEST_TYPES) | junk,
    },
).filter(lambda m: not (m.get("v") == [1, 0] and m.get("type") in protocol.REQUEST_TYPES))


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples drawn by hypothesis (deterministic, no shrinking needed)."""
    out: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(example: Any) -> None:
        out.append(example)

    draw()
    return out


# --------------------------------------------------------------------------- messages


def flips_and_cuts(payload: bytes, rng: random.Random) -> bytes:
    data = bytearray(payload)
    if rng.random() < 0.5:
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def raw_frames(valid: bytes, count: int, seed: int = 1) -> list[list[bytes]]:
    """Random bytes, damaged valid requests, multi-frame and pathological msgpack."""
    rng = random.Random(seed)
    frames: list[list[bytes]] = [
        [b""],
        [b"\xc1"],
        [b"\x91" * 100_000 + b"\xc0"],
        [b"\xdd\xff\xff\xff\xff"],
        [b"\xdf\xff\xff\xff\xff"],
        [b"\xc6\xff\xff\xff\xff" + b"x" * 10],
        [b"\xdb\xff\xff\xff\xff"],
        [msgpack.packb({b"id": b"x"})],
        [valid, b"second frame"],
        [b"", valid],
        [valid, valid, valid],
        [msgpack.packb(msgpack.ExtType(1, b"x"))],
        [msgpack.packb([1, 2, 3])],
    ]
    while len(frames) < count:
        if rng.random() < 0.5:
            frames.append([rng.randbytes(rng.randrange(0, 200))])
        else:
            frames.append([flips_and_cuts(valid, rng)])
    return frames


def expected_id(frames: list[bytes]) -> str:
    """The id the daemon's reply must carry: the request's if readable, else ``""``."""
    if len(frames) != 1:
        return ""
    try:
        msg = msgpack.unpackb(frames[0], raw=False, strict_map_key=True)
    except Exception:
        return ""
    return protocol.request_id(msg) if isinstance(msg, dict) else ""


def crossover(examples: list[dict[str, Any]], count: int, rng: random.Random) -> list[dict]:
    """More stylize requests, each mixing the fields of two hypothesis examples."""
    children = []
    for _ in range(count):
        child = dict(rng.choice(examples))
        donor = rng.choice(examples)
        child.update({k: v for k, v in donor.items() if rng.random() < 0.5})
        children.append({**child, "type": "stylize"})  # never a train job
    return children


def fuzz_messages(outside: Path, valid: bytes) -> list[tuple[str, list[bytes]]]:
    """(category, frames) for every message; structured ones get unique ids.

    Hypothesis draws the structured examples; as drawing costs milliseconds each on a
    busy 2-core machine, more stylize requests are bred from them by crossover.
    """
    drawn = {
        "stylize": collect(stylize(outside), 600),
        "train": collect(train(outside), 150),
        "other": collect(other_requests(outside), 150),
    }
    drawn["mixed"] = crossover(drawn["stylize"] + drawn["other"], 3300, random.Random(2))
    drawn["fast-params"] = collect(fast_jobs(), FAST_JOBS)
    drawn["gatys-params"] = collect(gatys_jobs(), GATYS_JOBS)
    out: list[tuple[str, list[bytes]]] = []
    for kind, examples in drawn.items():
        for i, body in enumerate(examples):
            msg = {**capped(body), "v": [1, 0], "id": f"{kind[0]}{kind[-1]}{i}"}
            out.append((kind, [msgpack.packb(msg, use_bin_type=True)]))
    for i, env in enumerate(collect(bad_envelopes, 150)):
        out.append(("envelope", [msgpack.packb({**env, "n": i}, use_bin_type=True)]))
    for value in collect(junk, 150):
        out.append(("not-a-map", [msgpack.packb(value, use_bin_type=True)]))
    hostile = sum(kind not in PARAM_KINDS for kind, _ in out)
    out += [("raw", frames) for frames in raw_frames(valid, 10_000 - hostile)]
    random.Random(0).shuffle(out)
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data dir with one style, and outside it a valid model that paints solid magenta."""
    root = tmp_path_factory.mktemp("fuzz")
    home, outside = root / "home", root / "outside"
    save_random_style(home, "rand")
    save_random_vgg(home / "weights" / "vgg16_features.safetensors")
    net = random_net(0)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.deconv3.conv2d.bias.copy_(torch.tensor([255.0, 0.0, 255.0]))
    save_style_model(outside / "sentinel.safetensors", net, {"name": SENTINEL}, half=False)
    torch.save(net.state_dict(), outside / "sentinel.pth")
    return {"home": home, "outside": outside}


def save_random_vgg(path: Path) -> Path:
    """VGG16 ``features`` weights of the right shapes, random values: Gatys jobs run."""
    from safetensors.torch import save_file

    from nst_core.vgg import make_features

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(make_features("vgg16").state_dict(), str(path))
    return path


def is_magenta(image: Image) -> bool:
    px = image.data
    step = image.channels
    return image.channels >= 3 and all(
        px[i] > 200 and px[i + 1] < 50 and px[i + 2] > 200 for i in range(0, len(px), step)
    )


# --------------------------------------------------------------------------- the test


def pump(
    sock: zmq.Socket,
    messages: list[list[bytes]],
    window: int = 256,
    quiet_s: float = 20.0,
    ping: bool = False,
) -> list[dict[str, Any]]:
    """Send every message keeping ``window`` in flight; returns the replies received.
    With ``ping``, also ping as a waiting client does (the daemon cancels the jobs of a
    silent one); the pings' replies are left out."""
    replies: list[dict[str, Any]] = []
    pings: set[str] = set()
    sent = finals = 0
    last_ping = heard = time.monotonic()
    while finals < len(messages):
        now = time.monotonic()
        if ping and now - last_ping >= protocol.PING_INTERVAL_S:
            request = protocol.make_request("ping")
            pings.add(request["id"])
            sock.send(protocol.encode(request))
            last_ping = now
        if sent < len(messages) and sent - finals < window:
            sock.send_multipart(messages[sent])
            sent += 1
            continue
        if not sock.poll(protocol.PING_INTERVAL_S * 1000 / 2):
            if time.monotonic() - heard > quiet_s:
                break  # silence: replies are missing (the assertions say which)
            continue
        frame = sock.recv()
        heard = time.monotonic()
        if not frame:
            continue  # the daemon's liveness probe (clients ignore empty frames)
        reply = msgpack.unpackb(frame, raw=False)
        if reply.get("id") in pings:
            continue
        replies.append(reply)
        finals += reply.get("type") in FINAL
    return replies


def valid_jobs(
    daemon: DaemonProcess,
    request: StylizeRequest,
    expected: bytes,
    stop: threading.Event,
    outcome: dict[str, Any],
) -> None:
    """Run the same valid job again and again until ``stop``; record any difference."""
    image = request.image
    with daemon.client(timeout=60) as client:
        while not stop.is_set() or outcome["jobs"] == 0:
            started = time.monotonic()
            try:
                result = client.stylize(image, style="rand", params=request.params)
            except DaemonError as exc:
                if exc.code == "busy":  # the fuzzers' valid jobs fill the queue: back off
                    outcome["busy"] += 1
                    time.sleep(0.05)
                    continue
                outcome["errors"].append(repr(exc))  # asserted in the test's thread
                return
            outcome["jobs"] += 1
            outcome["spans"].append((started, time.monotonic()))
            if result.image.data != expected:
                outcome["errors"].append("a valid job came back with other pixels")


def run_concurrently(fn: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def protocol_valid(frames: list[bytes]) -> bool:
    """Whether the daemon's protocol accepts this stylize request (torch-free, as it does)."""
    try:
        StylizeRequest.from_wire(msgpack.unpackb(frames[0], raw=False))
    except ProtocolError:
        return False
    return True


def test_ten_thousand_hostile_messages(world: dict[str, Any]) -> None:
    home, outside = world["home"], world["outside"]
    request = stylize_request(noise_image(40, 30, 4, seed=3), strength=0.8)
    [expected] = reference_results(home, [request])
    messages = fuzz_messages(outside, protocol.encode(request.to_wire()))
    hostile = [m for m in messages if m[0] not in PARAM_KINDS]
    param_jobs = [m for m in messages if m[0] in PARAM_KINDS]
    assert len(hostile) >= 10_000 and len(param_jobs) == FAST_JOBS + GATYS_JOBS

    env = {"TORCH_HOME": str(home / "torch")}
    args = [
        "--max-message-mb",
        str(MAX_MESSAGE_MB),
        "--vgg-weights",
        str(home / "weights" / "vgg16_features.safetensors"),
    ]
    with DaemonProcess(home, args=args, env=env) as daemon:
        stop = threading.Event()
        outcome: dict[str, Any] = {"jobs": 0, "busy": 0, "errors": [], "spans": []}
        background = run_concurrently(lambda: valid_jobs(daemon, request, expected, stop, outcome))
        # the hostile messages pipelined 256 at a time on 4 sockets; the well-formed jobs
        # with fuzzed parameters 4 at a time on a fifth, so that they reach the engine
        # instead of finding the queue full
        shares = [[f for _, f in hostile[i::FUZZ_SOCKETS]] for i in range(FUZZ_SOCKETS)]
        windows = [256] * FUZZ_SOCKETS + [4]
        shares.append([f for _, f in param_jobs])
        sockets = [dealer(daemon.endpoint) for _ in shares]
        results: list[list[dict[str, Any]]] = [[] for _ in shares]
        fuzz_started = time.monotonic()
        senders = [
            run_concurrently(
                lambda i=i: results[i].extend(
                    pump(sockets[i], shares[i], window=windows[i], ping=windows[i] < 256)
                )
            )
            for i in range(len(shares))
        ]
        # frames over the daemon's limit: the connection is dropped, nothing is parsed
        oversized = dealer(daemon.endpoint)
        big = b"\xc6" + (MAX_MESSAGE_MB << 20).to_bytes(4, "big") + bytes(MAX_MESSAGE_MB << 20)
        for _ in range(5):
            oversized.send(big)
        for thread in senders:
            thread.join(timeout=400)
        fuzz_ended = time.monotonic()
        # well-formed jobs told ``busy`` (the hostile valid jobs filled the queue): again,
        # one at a time, now that the queue is free
        busy = {r["id"] for r in results[-1] if r.get("code") == "busy"}
        retry_socket = dealer(daemon.endpoint)
        retried = pump(
            retry_socket, [f for _, f in param_jobs if expected_id(f) in busy], window=1, ping=True
        )
        retry_socket.close()
        stop.set()
        background.join(timeout=120)
        assert not oversized.poll(200), "an oversized frame was answered"

        assert daemon.alive(), daemon.output()
        status = daemon.status()
        for sock in [*sockets, oversized]:
            sock.close()

    replies = [r for rs in results for r in rs]
    finals = [r for r in replies if r.get("type") in FINAL]
    want = Counter(expected_id(frames) for _, frames in messages)
    got = Counter(r.get("id") for r in finals)
    missing, extra = want - got, got - want
    assert not missing and not extra, f"missing replies {dict(missing)}; extra {dict(extra)}"

    must_fail = {"train", "envelope", "not-a-map"}
    ids_of = {expected_id(frames): kind for kind, frames in messages}
    internal = [r for r in finals if r.get("code") == "internal"]
    assert not internal, internal[:5]
    for reply in finals:
        if ids_of.get(reply.get("id")) in must_fail:
            assert reply["type"] == "error", reply
        if reply["type"] == "error":
            assert reply["code"] in list(ErrorCode) and reply["message"], reply
        if reply["type"] == "result":
            assert not is_magenta(Image.from_wire(reply["image"])), "the outside model was used"
    assert SENTINEL not in status.models.fast, status.models
    assert status.running == () and status.queue == ()

    # well-formed jobs with fuzzed parameters: what the protocol accepts, the engine runs
    # (an image of the request's size and channels); what it refuses is an error
    final_of = {r["id"]: r for r in [*finals, *retried] if r.get("type") in FINAL}
    ran: Counter[str] = Counter()
    refused: list[tuple] = []  # accepted by the protocol, refused by the engine
    for kind, frames in param_jobs:
        sent = msgpack.unpackb(frames[0], raw=False)
        reply = final_of[sent["id"]]
        if not protocol_valid(frames):
            assert reply["type"] == "error", (sent["params"], reply)
            continue
        if reply["type"] != "result":
            refused.append(
                (
                    kind,
                    sent["image"]["width"],
                    sent["image"]["height"],
                    sent["params"],
                    reply.get("code"),
                    reply.get("message"),
                )
            )
            continue
        image = Image.from_wire(reply["image"])
        size = sent["image"]["width"], sent["image"]["height"], sent["image"]["channels"]
        assert (image.width, image.height, image.channels) == size, (sent["params"], size)
        ran[kind] += 1
    assert not refused, "\n".join(map(repr, refused[:20])) + f"\n({len(refused)} in all)"
    assert ran["fast-params"] >= FAST_JOBS // 4 and ran["gatys-params"] >= GATYS_JOBS // 5, ran

    # the concurrent client's valid jobs came back right, and some while the fuzz ran
    assert outcome["errors"] == [] and outcome["jobs"] >= 1, outcome
    during = [s for s in outcome["spans"] if fuzz_started <= s[0] and s[1] <= fuzz_ended]
    assert len(during) >= 3, (len(during), outcome["jobs"], outcome["busy"])
    of_hostile = [r for r in finals if ids_of.get(r.get("id")) not in PARAM_KINDS]
    FIGURES.update(
        messages=len(hostile) + 5,
        oversized_dropped=5,
        replies=len(of_hostile),
        errors=sum(r["type"] == "error" for r in of_hostile),
        fuzz_jobs_run=sum(r["type"] == "result" for r in of_hostile),
        param_jobs=len(param_jobs),
        param_fast_ran=ran["fast-params"],
        param_gatys_ran=ran["gatys-params"],
        param_busy_retried=len(busy),
        valid_jobs=outcome["jobs"],
        valid_jobs_during_fuzz=len(during),
        valid_jobs_told_busy=outcome["busy"],
    )
    print(f"\nfuzz: {FIGURES}")


def test_hostile_style_names_get_clear_refusals(world: dict[str, Any]) -> None:
    """The outside model named by path, one request each, answered with a clear error."""
    home, outside = world["home"], world["outside"]
    image = noise_image(20, 16, 3, seed=1)
    names = [
        str(outside / "sentinel.safetensors"),
        "../outside/sentinel",
        "../../outside/sentinel.safetensors",
        "sentinel",
        "/etc/passwd",
    ]
    with DaemonProcess(home) as daemon, daemon.client(timeout=30) as client:
        for name in names:
            with pytest.raises(DaemonError) as caught:
                client.stylize(image, style=name)
            assert caught.value.code in ("bad_parameter", "unknown_style", "bad_model")
            assert name in caught.value.message or "sentinel" in caught.value.message
        with pytest.raises(DaemonError) as caught:
            client.stylize(
                image,
                method="gatys",
                style_image=image,
                params={"init": "fast", "init_style": names[0]},
            )
        assert caught.value.code == "bad_parameter"
        assert SENTINEL not in client.status().models.fast
