"""The daemon as a real process on a free loopback port, driven by real clients.

One daemon serves the module (fixture ``daemon``); lifecycle tests start their own.
Gatys jobs (and the long jobs that cancellation tests need) use the bundled VGG16 weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import zmq
import zmq.auth
from conftest import BUNDLED_VGG16

from nst_client import protocol
from nst_client.client import Client
from nst_client.errors import DaemonError, DaemonUnavailable
from nst_client.params import FastParams
from nst_client.protocol import Accepted, Image, Progress, StylizeRequest
from nst_core.transformer_net import TransformerNet, save_style_model
from nst_daemon import lifecycle
from nst_daemon.execute import execute_stylize
from nst_daemon.models import Models

from daemon_helpers import DaemonProcess, free_endpoint

VGG = BUNDLED_VGG16
needs_vgg = pytest.mark.skipif(not VGG.exists(), reason=f"VGG16 weights not available: {VGG}")
STYLE = "test-style"


def make_style(home: Path) -> None:
    """A random but lively fast-style network (no reference data needed)."""
    torch.manual_seed(0)
    net = TransformerNet()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(400.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    meta = {
        "name": STYLE,
        "title": "Test Style",
        "artist": "nobody",
        "year": "2026",
        "licence": "CC0",
    }
    save_style_model(home / "styles" / f"{STYLE}.safetensors", net, meta)


def start_daemon(
    home: Path, *args: str, endpoint: str | None = None, client_options: dict | None = None
) -> DaemonProcess:
    return DaemonProcess(home, endpoint, args, client_options=client_options).start()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> DaemonProcess:
    home = tmp_path_factory.mktemp("nst_home")
    make_style(home)
    extra = ["--vgg-weights", str(VGG)] if VGG.exists() else []
    d = start_daemon(home, "--client-silence", "2", "--max-message-mb", "8", *extra)
    yield d
    assert d.terminate() == 0


def pattern(width: int, height: int, channels: int = 3, seed: int = 0) -> Image:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (height * width * channels,), generator=g, dtype=torch.uint8)
    return Image(width, height, channels, data.numpy().tobytes())


def in_process(daemon: DaemonProcess, image: Image, **fields) -> Image:
    """The same request run by the CLI's ``--local`` path (same job function)."""
    request = StylizeRequest(image, STYLE, params=FastParams(**fields.get("params", {})))
    old = os.environ.get("NST_HOME")
    os.environ["NST_HOME"] = str(daemon.home)
    try:
        return execute_stylize(request, Models("cpu"))["image"]
    finally:
        if old is None:
            del os.environ["NST_HOME"]
        else:
            os.environ["NST_HOME"] = old


def max_difference(a: Image, b: Image) -> int:
    assert (a.width, a.height, a.channels, a.dtype) == (b.width, b.height, b.channels, b.dtype)
    return int(
        (
            torch.frombuffer(bytearray(a.data), dtype=torch.uint8).int()
            - torch.frombuffer(bytearray(b.data), dtype=torch.uint8).int()
        )
        .abs()
        .max()
    )


def gatys_fields(size: int = 64, iterations: int = 5, **params) -> dict:
    return {
        "method": "gatys",
        "style_image": pattern(size, size, seed=9),
        "params": {"iterations": iterations, "quality": "draft", **params},
    }


# --------------------------------------------------------------------------- requests


def test_hello_and_styles(daemon):
    with daemon.client() as client:
        hello = client.hello()
        styles = {s.name: s for s in client.styles()}
    assert hello.protocol == protocol.PROTOCOL_VERSION and hello.device == "cpu"
    assert hello.limits.max_message_bytes == 8 << 20
    entry = styles[STYLE]
    assert (entry.title, entry.source, entry.licence) == ("Test Style", "user", "CC0")
    assert entry.preview is not None and entry.preview.width == 96


def test_fast_job_streams_progress_and_matches_in_process(daemon):
    image = pattern(64, 48)
    events: list = []
    with daemon.client() as client:
        result = client.stylize(image, style=STYLE, on_progress=events.append)
    assert isinstance(events[0], Accepted) and events[0].job_id == result.job_id
    assert any(isinstance(e, Progress) for e in events)
    assert result.timings["total_s"] > 0
    assert result.image.data != image.data
    assert max_difference(result.image, in_process(daemon, image)) <= 1


def test_alpha_gray_mask_and_max_size(daemon):
    gray_alpha = pattern(40, 30, channels=2, seed=1)
    nothing_selected = Image(40, 30, 1, bytes(40 * 30))
    with daemon.client() as client:
        out = client.stylize(gray_alpha, style=STYLE, params={"max_size": 16}).image
        masked = client.stylize(gray_alpha, style=STYLE, mask=nothing_selected).image
    assert (out.width, out.height, out.channels) == (40, 30, 2)
    assert out.data[1::2] == gray_alpha.data[1::2]  # alpha passed through
    assert out.data[0::2] != gray_alpha.data[0::2]
    assert max_difference(masked, gray_alpha) <= 1  # an empty selection changes nothing
    assert max_difference(out, in_process(daemon, gray_alpha, params={"max_size": 16})) <= 1


def test_concurrent_clients_get_their_own_results(daemon):
    images = [pattern(48, 40, seed=s) for s in range(3)]
    results: dict[int, Image] = {}

    def run(i: int) -> None:
        with daemon.client() as client:
            results[i] = client.stylize(images[i], style=STYLE).image

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2]
    for i, image in enumerate(images):
        assert max_difference(results[i], in_process(daemon, image)) <= 1


def raw_socket(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    return sock


def raw_reply(sock: zmq.Socket, timeout: float = 10) -> dict | None:
    if not sock.poll(timeout * 1000):
        return None
    return protocol.decode(sock.recv())


def final_reply(sock: zmq.Socket, timeout: float = 60) -> dict | None:
    """The reply that ends a request, pinging like a client while a job waits or runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = raw_reply(sock, timeout=protocol.PING_INTERVAL_S)
        if reply is None or reply["type"] in ("accepted", "progress", "ok"):
            sock.send(protocol.encode(protocol.make_request("ping")))
            continue
        return reply
    return None


def test_malformed_messages_get_errors_while_a_good_job_completes(daemon):
    image = pattern(160, 120, seed=5)
    expected = in_process(daemon, image)
    outcome: dict[str, Image] = {}

    def good_job() -> None:
        with daemon.client() as client:
            outcome["image"] = client.stylize(image, style=STYLE).image

    worker = threading.Thread(target=good_job)
    worker.start()
    good = {"image": pattern(4, 4).to_wire(), "style": STYLE}
    hostile: list[tuple[list[bytes], str | None]] = [
        ([b"\xc1 not msgpack"], "bad_request"),
        ([protocol.encode([1, 2, 3])], "bad_request"),
        ([protocol.encode({**protocol.make_request("hello"), "v": [9, 0]})], "unsupported_version"),
        ([protocol.encode(protocol.make_request("rm -rf"))], "bad_request"),
        (
            [protocol.encode(protocol.make_request("stylize", **good, method="dream"))],
            "bad_parameter",
        ),
        (
            [
                protocol.encode(
                    protocol.make_request(
                        "stylize",
                        image={"width": 60000, "height": 60000, "channels": 4, "data": b""},
                        style=STYLE,
                    )
                )
            ],
            "too_large",
        ),
        (
            [
                protocol.encode(
                    protocol.make_request(
                        "stylize",
                        image={"width": 4, "height": 4, "channels": 3, "data": bytes(47)},
                        style=STYLE,
                    )
                )
            ],
            "bad_request",
        ),
        (
            [protocol.encode(protocol.make_request("stylize", **{**good, "style": "../../x"}))],
            "bad_parameter",
        ),
        (
            [protocol.encode(protocol.make_request("stylize", **{**good, "style": "nope"}))],
            "unknown_style",
        ),
        (
            [
                protocol.encode(
                    protocol.make_request("stylize", **good, params={"strength": float("nan")})
                )
            ],
            "bad_parameter",
        ),
        ([protocol.encode(protocol.make_request("hello")), b"extra frame"], "bad_request"),
        ([protocol.encode(protocol.make_request("cancel", job_id="j999999"))], "unknown_job"),
    ]
    sock = raw_socket(daemon.endpoint)
    for frames, code in hostile:
        sock.send_multipart(frames)
        reply = final_reply(sock)
        assert reply is not None and reply["type"] == "error", frames
        assert reply["code"] == code and reply["message"]
    sock.close()
    worker.join(120)
    assert max_difference(outcome["image"], expected) <= 1


def test_oversized_frames_are_dropped_and_the_daemon_keeps_serving(daemon):
    sock = raw_socket(daemon.endpoint)
    sock.send(bytes(9 << 20))  # over --max-message-mb 8: the connection is dropped
    assert raw_reply(sock, timeout=1) is None
    sock.close()
    with daemon.client() as client:
        assert client.hello().TYPE == "hello"


# --------------------------------------------------------------------------- long jobs


@needs_vgg
def test_gatys_job_streams_losses_and_previews(daemon):
    events: list = []
    with daemon.client() as client:
        result = client.stylize(
            pattern(64, 64),
            on_progress=events.append,
            **gatys_fields(iterations=4, preview_every=2),
        )
    progress = [e for e in events if isinstance(e, Progress) and e.total]
    assert progress[-1].step == progress[-1].total
    assert all(e.losses for e in progress)
    assert any(isinstance(e.preview, Image) for e in progress)
    assert (result.image.width, result.image.height) == (64, 64)


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def active_ids(daemon: DaemonProcess) -> set[str]:
    """Jobs queued or running and not being cancelled."""
    status = daemon.status()
    return {j.job_id for j in status.running + status.queue if j.state != "cancelling"}


def running_ids(daemon: DaemonProcess) -> set[str]:
    status = daemon.status()
    return {j.job_id for j in status.running + status.queue}


@needs_vgg
def test_fast_jobs_pass_a_long_job_and_cancel_stops_it(daemon):
    widths: list[int] = []

    def quick_job() -> None:
        with daemon.client() as quick:
            widths.append(quick.stylize(pattern(32, 32), style=STYLE).image.width)

    with daemon.client() as slow:
        events = slow.submit(pattern(96, 96), **gatys_fields(96, iterations=2000))
        job_id = next(events).job_id
        next(events)  # first progress: the long job is running
        quick = threading.Thread(target=quick_job)
        quick.start()
        while quick.is_alive():  # keep reading progress, as a waiting client does (pings)
            next(events)
        assert widths == [32]
        assert job_id in running_ids(daemon)  # the fast job did not wait for it
        slow.cancel(job_id)  # only the client that submitted a job may cancel it
        assert job_id not in active_ids(daemon)
        with pytest.raises(DaemonError) as info:
            for _ in events:
                pass
        assert info.value.code == "cancelled"
    assert wait_for(lambda: not running_ids(daemon), 10)


CLIENT_SCRIPT = """
import sys
from nst_client.client import Client
from nst_client.protocol import Image
client = Client(sys.argv[1], autostart=False)
style = Image(96, 96, 3, bytes(range(256)) * 108)
events = client.submit(Image(96, 96, 3, bytes(96 * 96 * 3)), method="gatys",
                       style_image=style, params={"iterations": 2000, "quality": "draft"})
print(next(events).job_id, flush=True)
for event in events:
    pass
"""


@needs_vgg
def test_a_killed_client_has_its_job_cancelled(daemon):
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, daemon.endpoint], stdout=subprocess.PIPE, text=True
    )
    job_id = proc.stdout.readline().strip()

    def optimising() -> bool:  # past loading: the network is resident
        jobs = {j.job_id: j for j in daemon.status().running}
        return job_id in jobs and (jobs[job_id].step or 0) > 0

    assert wait_for(optimising, 60)
    proc.kill()
    proc.wait()
    # the daemon notices and the job stops at the engine's next step (how fast it notices a
    # closed connection, without the silence limit, is test_faults' business)
    assert wait_for(lambda: job_id not in active_ids(daemon), 60)
    assert wait_for(lambda: job_id not in running_ids(daemon), 60)


@needs_vgg
def test_a_silent_client_has_its_job_cancelled(daemon):
    sock = raw_socket(daemon.endpoint)  # sends no pings
    fields = gatys_fields(96, iterations=2000)
    fields["style_image"] = [fields["style_image"].to_wire()]
    sock.send(
        protocol.encode(protocol.make_request("stylize", image=pattern(96, 96).to_wire(), **fields))
    )
    job_id = raw_reply(sock)["job_id"]
    started = time.monotonic()
    reply = raw_reply(sock, timeout=15)
    while reply["type"] == "progress":
        reply = raw_reply(sock, timeout=15)
    assert (reply["type"], reply["code"], reply["job_id"]) == ("error", "cancelled", job_id)
    assert time.monotonic() - started > 1.5  # --client-silence 2
    sock.close()


# --------------------------------------------------------------------------- lifecycle


def test_shutdown_sigterm_stale_pidfile_and_a_second_daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(tmp_path))
    endpoint = free_endpoint()
    pidfile = lifecycle.state_file(endpoint, "pid")
    pidfile.write_text("999999\n")  # left by a daemon that was killed
    first = start_daemon(tmp_path, endpoint=endpoint)
    assert pidfile.read_text().strip() == str(first.proc.pid)
    assert lifecycle.is_bound(endpoint, first.proc.pid)

    second = subprocess.run(
        [sys.executable, "-m", "nst_daemon.server", "--endpoint", endpoint],
        env={**os.environ, "NST_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1 and "already serving" in second.stderr

    elsewhere = subprocess.run(  # another NST_HOME, same port: the bind fails clearly
        [sys.executable, "-m", "nst_daemon.server", "--endpoint", endpoint],
        env={**os.environ, "NST_HOME": str(tmp_path / "other")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert elsewhere.returncode == 1 and "already in use" in elsewhere.stderr

    with first.client() as client:
        client.shutdown()
    assert first.proc.wait(20) == 0
    assert not pidfile.exists() and not lifecycle.state_file(endpoint, "ready").exists()

    again = start_daemon(tmp_path, endpoint=endpoint)
    assert again.terminate() == 0  # SIGTERM: clean exit
    assert "stopped" in lifecycle.state_file(endpoint, "log").read_text()


def test_non_loopback_bind_needs_curve(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nst_daemon.server", "--endpoint", "tcp://0.0.0.0:47899"],
        env={**os.environ, "NST_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "CURVE" in result.stderr


def test_curve_rejects_unknown_client_keys(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public_file, server_secret_file = zmq.auth.create_certificates(keys, "server")
    client_public_file, client_secret_file = zmq.auth.create_certificates(keys, "client")
    _, stranger_secret_file = zmq.auth.create_certificates(keys, "stranger")
    (allowed / "client.key").write_bytes(Path(client_public_file).read_bytes())
    server_public, _ = zmq.auth.load_certificate(server_public_file)
    keys = {
        "curve_server_key": server_public,
        "curve_client_keys": zmq.auth.load_certificate(client_secret_file),
    }
    d = start_daemon(
        tmp_path,
        "--curve-secret",
        server_secret_file,
        "--curve-clients",
        str(allowed),
        client_options=keys,
    )
    try:
        with Client(d.endpoint, autostart=False, timeout=5, **keys) as ok:
            assert ok.hello().TYPE == "hello"
        with (
            Client(
                d.endpoint,
                autostart=False,
                timeout=2,
                curve_server_key=server_public,
                curve_client_keys=zmq.auth.load_certificate(stranger_secret_file),
            ) as bad,
            pytest.raises(DaemonUnavailable),
        ):
            bad.hello()
        with (
            Client(d.endpoint, autostart=False, timeout=2) as plain,
            pytest.raises(DaemonUnavailable),
        ):
            plain.hello()  # no encryption at all
    finally:
        assert d.terminate() == 0


def test_autostart(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_HOME", str(tmp_path))
    endpoint = free_endpoint()
    statuses: list[str] = []
    with Client(endpoint, on_status=statuses.append, timeout=30) as client:
        hello = client.hello()
        assert statuses[0] == "starting daemon…"
        assert lifecycle.running_pid(endpoint) == hello.pid
        client.shutdown()
    assert wait_for(lambda: lifecycle.running_pid(endpoint) is None, 20)
