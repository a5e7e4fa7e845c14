"""The client library against a scripted ROUTER peer (real sockets, no engine)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable

import pytest
import zmq

from nst_client import protocol
from nst_client.client import Client, is_local_endpoint
from nst_client.errors import DaemonError, DaemonUnavailable
from nst_client.params import FastParams
from nst_client.protocol import Accepted, Image, Result, StylizeRequest


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class ScriptedDaemon(threading.Thread):
    """A ROUTER that answers ``hello`` and hands every other request to ``script``."""

    def __init__(self, script: Callable[[zmq.Socket, bytes, dict], None], limits=None) -> None:
        super().__init__(daemon=True)
        self.endpoint = free_endpoint()
        self.script = script
        self.limits = limits or {"max_pixels": 10**8, "max_message_bytes": 10**9}
        self.received: list[dict] = []
        self._halt = threading.Event()
        self._ready = threading.Event()
        self.start()
        self._ready.wait(5)

    def run(self) -> None:
        context = zmq.Context.instance()
        router = context.socket(zmq.ROUTER)
        router.linger = 0
        router.bind(self.endpoint)
        self._ready.set()
        while not self._halt.is_set():
            if not router.poll(50):
                continue
            identity, payload = router.recv_multipart()
            msg = protocol.decode(payload)
            self.received.append(msg)
            if msg["type"] == "hello":
                reply = reply_map("hello", msg["id"], protocol=[1, 0], limits=self.limits)
                router.send_multipart([identity, protocol.encode(reply)])
            else:
                self.script(router, identity, msg)
        router.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def types(self) -> list[str]:
        return [m["type"] for m in self.received]


def reply_map(kind: str, rid: str, **fields) -> dict:
    """A reply as a raw wire map (what any 1.x daemon may send)."""
    return {"v": list(protocol.PROTOCOL_VERSION), "id": rid, "type": kind, **fields}


def send(router: zmq.Socket, identity: bytes, msg: dict, kind: str, **fields) -> None:
    reply = reply_map(kind, msg["id"], **fields)
    router.send_multipart([identity, protocol.encode(reply)])


def small_image() -> Image:
    return Image(2, 2, 3, bytes(range(12)))


def test_local_endpoints():
    assert is_local_endpoint("tcp://127.0.0.1:47811")
    assert is_local_endpoint("ipc:///tmp/nst.sock")
    assert not is_local_endpoint("tcp://192.168.1.5:47811")
    assert is_local_endpoint("tcp://127.0.0.2:47811") and is_local_endpoint("tcp://[::1]:47811")
    # a host name is resolved by DNS, whatever it looks like: only literal loopback counts
    assert not is_local_endpoint("tcp://127.attacker.example:47811")


def test_job_events_are_decoded_and_progress_reported():
    def script(router, identity, msg):
        if msg["type"] == "stylize":
            send(router, identity, msg, "accepted", job_id="j1", position=0)
            send(
                router,
                identity,
                msg,
                "progress",
                job_id="j1",
                step=1,
                total=2,
                stage="s",
                losses={},
                eta_s=0.1,
                preview=small_image().to_wire(),
            )
            send(
                router,
                identity,
                msg,
                "result",
                job_id="j1",
                image=msg["image"],
                timings={"total_s": 0.5},
            )

    fake = ScriptedDaemon(script)
    events: list[dict] = []
    with Client(fake.endpoint, autostart=False, timeout=5) as client:
        result = client.stylize(small_image(), style="x", on_progress=events.append)
    fake.stop()
    assert result.image == small_image()
    assert [e.TYPE for e in events] == ["accepted", "progress"]
    assert events[1].preview == small_image()


def test_error_reply_raises_with_code():
    def script(router, identity, msg):
        send(router, identity, msg, "error", code="unknown_style", message="no style 'x'")

    fake = ScriptedDaemon(script)
    with (
        Client(fake.endpoint, autostart=False, timeout=5) as client,
        pytest.raises(DaemonError) as info,
    ):
        client.stylize(small_image(), style="x")
    fake.stop()
    assert info.value.code == "unknown_style" and "no style" in info.value.message


def test_silent_daemon_times_out_and_the_job_is_cancelled():
    def script(router, identity, msg):
        if msg["type"] == "stylize":
            send(router, identity, msg, "accepted", job_id="j7", position=0)

    fake = ScriptedDaemon(script)
    with Client(fake.endpoint, autostart=False, timeout=1.5) as client:
        started = time.monotonic()
        with pytest.raises(DaemonError) as info:
            client.stylize(small_image(), style="x")
        elapsed = time.monotonic() - started
        time.sleep(0.2)
    fake.stop()
    assert info.value.code == "timeout"
    assert elapsed >= 1.5  # waited its whole timeout (an upper bound would be a timing)
    assert "ping" in fake.types()  # heartbeats while waiting
    cancels = [m for m in fake.received if m["type"] == "cancel"]
    assert cancels and cancels[0]["job_id"] == "j7"


def test_closing_the_event_generator_cancels_the_job():
    def script(router, identity, msg):
        if msg["type"] == "stylize":
            send(router, identity, msg, "accepted", job_id="j9", position=3)

    fake = ScriptedDaemon(script)
    with Client(fake.endpoint, autostart=False, timeout=5) as client:
        events = client.submit(small_image(), style="x")
        assert next(events).position == 3
        events.close()
        time.sleep(0.3)
    fake.stop()
    assert any(m["type"] == "cancel" and m["job_id"] == "j9" for m in fake.received)


def test_too_large_request_is_refused_before_sending():
    fake = ScriptedDaemon(lambda *a: None, limits={"max_pixels": 10, "max_message_bytes": 500})
    image = Image(20, 20, 3, bytes(1200))
    with (
        Client(fake.endpoint, autostart=False, timeout=5) as client,
        pytest.raises(DaemonError) as info,
    ):
        client.stylize(image, style="x")
    fake.stop()
    assert info.value.code == "too_large"
    assert "stylize" not in fake.types()


def test_no_daemon_without_autostart():
    with (
        Client(free_endpoint(), autostart=False, timeout=1) as client,
        pytest.raises(DaemonUnavailable) as info,
    ):
        client.status()
    assert "nst daemon start" in str(info.value)


def test_autostart_failure_is_explained():
    statuses: list[str] = []
    command = [sys.executable, "-c", "import sys; sys.exit('nst: error: no torch here')"]
    endpoint = free_endpoint()
    with (
        Client(endpoint, autostart=command, timeout=1, on_status=statuses.append) as client,
        pytest.raises(DaemonUnavailable) as info,
    ):
        client.hello()
    message = str(info.value)
    assert f"daemon not running at {endpoint} and could not be started" in message
    assert "no torch here" in message and "nst daemon start" in message
    assert statuses == ["starting daemon…"]

    with (
        Client(endpoint, autostart=["/nonexistent/nst"], timeout=1) as client,
        pytest.raises(DaemonUnavailable, match="cannot run"),
    ):
        client.hello()


def test_a_typed_request_goes_out_with_the_protocols_keys():
    def script(router, identity, msg):
        if msg["type"] == "stylize":
            send(router, identity, msg, "accepted", job_id="j2", position=0)
            send(
                router,
                identity,
                msg,
                "result",
                job_id="j2",
                image=msg["image"],
                timings={"total_s": 0.1},
            )

    fake = ScriptedDaemon(script)
    request = StylizeRequest(small_image(), "x", params=FastParams(strength=0.5))
    with Client(fake.endpoint, autostart=False, timeout=5) as client:
        events = list(client.run(request))
    fake.stop()
    assert [type(e) for e in events] == [Accepted, Result]
    assert events[-1].image == small_image()
    sent = next(m for m in fake.received if m["type"] == "stylize")
    assert set(sent) == {"v", "id", "type", "image", "method", "style", "params"}
    assert (sent["method"], sent["style"], sent["params"]) == ("fast", "x", {"strength": 0.5})


def test_a_malformed_reply_is_an_internal_error():
    def script(router, identity, msg):
        if msg["type"] == "stylize":
            send(router, identity, msg, "progress", job_id="j3", preview="not an image")

    fake = ScriptedDaemon(script)
    with (
        Client(fake.endpoint, autostart=False, timeout=5) as client,
        pytest.raises(DaemonError) as info,
    ):
        client.stylize(small_image(), style="x")
    fake.stop()
    assert info.value.code == "internal" and "malformed" in info.value.message
