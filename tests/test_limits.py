"""Resource limits: a local client must not be able to take the daemon down or lock
others out (queue quotas, idle connections, stalled partial frames), and clients learn
promptly when the daemon stops (killed, SIGTERM) or which daemon serves (concurrent
``nst daemon start``).

Real daemon processes on real sockets; every bound on time is generous (a loaded
2-core machine must pass), the assertions are about what happened, not how fast.
"""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from test_faults import save_random_vgg

from nst_client.client import Client
from nst_client.errors import DaemonError
from nst_client.protocol import Image, Progress
from nst_daemon import lifecycle

from daemon_helpers import (
    DaemonProcess,
    environment,
    free_endpoint,
    noise_image,
    save_random_style,
    wait_until,
)

ENDLESS = {"iterations": 100000, "optimizer": "adam"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with random VGG weights (Gatys jobs that run until cancelled)."""
    home = tmp_path_factory.mktemp("limits")
    save_random_vgg(home / "weights" / "vgg16_features.safetensors")
    save_random_style(home, "rand")
    return home


def gatys(client: Client, image: Image, **params: Any) -> Iterator[dict[str, Any]]:
    return client.submit(
        image,
        method="gatys",
        style_image=noise_image(16, 16, 3, seed=9),
        params={**ENDLESS, **params},
    )


def first_event(events: Iterator[Any]) -> Any:
    """The job's ``accepted`` event, or the error that refused it."""
    try:
        return next(events)
    except DaemonError as exc:
        return exc


def wait_running(events: Iterator[Any]) -> None:
    for event in events:
        if isinstance(event, Progress) and event.step >= 1:
            return


def idle(daemon: DaemonProcess) -> bool:
    status = daemon.status()
    return not status.running and not status.queue


# --------------------------------------------------------------------------- queue quotas


@pytest.fixture(scope="module")
def quota_daemon(home: Path) -> Iterator[DaemonProcess]:
    args = ["--client-silence", "120", "--max-queued-mb", "8", "--max-queued-mb-per-client", "4"]
    with DaemonProcess(home, args=args) as daemon:
        yield daemon


@contextlib.contextmanager
def long_job_running(daemon: DaemonProcess) -> Iterator[Client]:
    """A client whose endless Gatys job occupies the worker (queued jobs stay queued)."""
    with daemon.client(timeout=60) as client:
        job = gatys(client, noise_image(32, 32, 3, seed=1))
        wait_running(job)
        try:
            yield client
        finally:
            job.close()
    assert wait_until(lambda: idle(daemon), timeout=20), daemon.status()


def test_one_client_cannot_fill_the_queue_for_others(quota_daemon: DaemonProcess) -> None:
    """Today one client may queue 64 jobs and everybody else gets ``busy``."""
    small = noise_image(16, 16, 3, seed=2)
    with (
        long_job_running(quota_daemon),
        quota_daemon.client(timeout=60) as greedy,
        quota_daemon.client(timeout=60) as other,
    ):
        jobs, refusal = [], None
        for _ in range(65):
            events = gatys(greedy, small)
            answer = first_event(events)
            if isinstance(answer, DaemonError):
                refusal = answer
                break
            jobs.append(events)
        assert refusal is not None and refusal.code == "busy", "one client filled the queue"
        assert "--max-queued-per-client" in refusal.message, refusal.message
        assert len(jobs) < 64
        theirs = gatys(other, small)
        accepted = first_event(theirs)
        assert not isinstance(accepted, DaemonError), accepted
        assert accepted.TYPE == "accepted"
        print(f"\none client: {len(jobs)} queued, then busy: {refusal.message}")
        for events in [*jobs, theirs]:
            events.close()


def test_queued_image_memory_is_bounded_per_client_and_in_total(
    quota_daemon: DaemonProcess,
) -> None:
    """1.5 MiB images under a 4 MiB per-client and an 8 MiB total bound."""
    big = noise_image(724, 724, 3, seed=3)  # 1.5 MiB
    with long_job_running(quota_daemon), contextlib.ExitStack() as stack:
        a, b, c = (stack.enter_context(quota_daemon.client(timeout=60)) for _ in range(3))
        jobs = {
            name: [gatys(cl, big) for _ in range(n)]  # kept: closing one cancels it
            for name, cl, n in (("a", a, 3), ("b", b, 2), ("c", c, 2))
        }
        answers = {name: [first_event(events) for events in got] for name, got in jobs.items()}
        codes = {
            name: [getattr(x, "code", "accepted") for x in got] for name, got in answers.items()
        }
        assert codes == {
            "a": ["accepted", "accepted", "busy"],
            "b": ["accepted", "accepted"],
            "c": ["accepted", "busy"],
        }, codes
        assert "--max-queued-mb-per-client" in answers["a"][2].message
        assert "(--max-queued-mb)" in answers["c"][1].message
        queued = quota_daemon.status().queue
        assert len(queued) == 5
        print(f"\nper client: {answers['a'][2].message}\ntotal: {answers['c'][1].message}")
        for events in sum(jobs.values(), []):
            events.close()


# --------------------------------------------------------------------------- idle connections

FD_LIMIT = 256
SET_FD_LIMIT = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class LimitedDaemon(DaemonProcess):
    """A daemon whose file-descriptor limit is ``FD_LIMIT`` (set before it starts)."""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-c", SET_FD_LIMIT, *super().command[1:]]


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def raw_connection(port: int) -> socket.socket:
    """A TCP connection that never says anything (not even a ZMTP greeting)."""
    sock = socket.socket()
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    return sock


def test_idle_connections_do_not_lock_out_a_real_client(home: Path) -> None:
    """More idle connections than the daemon has file descriptors: raw TCP ones (no
    greeting) and ZeroMQ ones (handshake done, then silence); a real client is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    context = zmq.Context()
    raw: list[socket.socket] = []
    dealers: list[zmq.Socket] = []
    with LimitedDaemon(home) as daemon:
        try:
            port = int(daemon.endpoint.rsplit(":", 1)[1])
            baseline = open_fds(daemon.pid)
            raw = [raw_connection(port) for _ in range(100)]
            for _ in range(200):
                sock = context.socket(zmq.DEALER)
                sock.linger = 0
                sock.reconnect_ivl = 5000  # an attacker that holds its connections
                sock.connect(daemon.endpoint)
                dealers.append(sock)
            time.sleep(1.0)  # let the daemon accept what it can
            attacked = time.monotonic()
            with daemon.client(timeout=30) as client:
                hello = client.probe(timeout=20)
                result = client.stylize(noise_image(24, 20, 3, seed=4), style="rand")
            served_after = time.monotonic() - attacked
            assert hello.pid == daemon.pid
            assert result.image.width == 24
            fds = open_fds(daemon.pid)
            assert fds < FD_LIMIT, fds
            print(
                f"\n300 idle connections against a {FD_LIMIT}-descriptor daemon "
                f"({baseline} in use before): real client served after {served_after:.2f} s, "
                f"{fds} descriptors open"
            )
        finally:
            for sock in raw:
                sock.close()
            context.destroy(linger=0)
        assert daemon.alive()


# --------------------------------------------------------------------------- partial frames

ZMTP_GREETING = (
    b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31)
)


def zmtp_ready(socket_type: bytes = b"DEALER") -> bytes:
    name = b"Socket-Type"
    body = (
        b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type
    )
    return bytes([0x04, len(body)]) + body


def stalled_frame(port: int, announced: int, sent: bytes) -> socket.socket:
    """A ZMTP connection that announces a frame of ``announced`` bytes, sends ``sent``
    of it and stalls."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(ZMTP_GREETING + zmtp_ready() + b"\x02" + struct.pack(">Q", announced))
    with contextlib.suppress(OSError):  # the daemon may close it while we send
        sock.sendall(sent)
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other side closed ``sock`` (reads what it sent until EOF or nothing)."""
    while True:
        try:
            if not sock.recv(65536, socket.MSG_DONTWAIT):
                return True
        except BlockingIOError:
            return False
        except OSError:
            return True


def test_stalled_partial_frames_are_dropped_beyond_the_budget(home: Path) -> None:
    """Eight connections each stall in the middle of a 60 MiB frame (40 MiB sent); the
    daemon holds at most ``--max-receiving-mb`` 96 of them and serves a real client."""
    args = ["--max-message-mb", "64", "--max-receiving-mb", "96"]
    chunk = bytes(40 << 20)
    with DaemonProcess(home, args=args) as daemon:
        port = int(daemon.endpoint.rsplit(":", 1)[1])
        rss_before = daemon.rss_kb()
        stalled = [stalled_frame(port, 60 << 20, chunk) for _ in range(8)]
        try:
            closed = wait_until(lambda: sum(map(closed_by_peer, stalled)) >= 6, timeout=20)
            still_open = sum(not closed_by_peer(s) for s in stalled)
            rss_after = daemon.rss_kb()
            assert closed, f"{still_open} of 8 stalled frames still held"
            with daemon.client(timeout=30) as client:
                result = client.stylize(noise_image(24, 20, 3, seed=5), style="rand")
            assert result.image.width == 24
            print(
                f"\n8 stalled 40-MiB partial frames, 96 MiB budget: {8 - still_open} "
                f"dropped, {still_open} held; RSS {rss_before >> 10} -> {rss_after >> 10} MiB"
            )
        finally:
            for sock in stalled:
                sock.close()
        assert daemon.alive()


# --------------------------------------------------------------------------- daemon stops


def start_job_then(daemon: DaemonProcess, sig: int) -> tuple[DaemonError, float]:
    """Run an endless Gatys job, send the daemon ``sig`` once it runs; returns the error
    the client raised and how long after the signal. The client's timeout is long (300 s),
    so an answer well before it can only come from noticing the closed connection."""
    with daemon.client(timeout=300) as client:
        job = gatys(client, noise_image(32, 32, 3, seed=6))
        wait_running(job)
        queued = gatys(client, noise_image(32, 32, 3, seed=7))
        assert next(queued).TYPE == "accepted"
        daemon.kill(sig)
        signalled = time.monotonic()
        with pytest.raises(DaemonError) as caught:
            for _ in job:
                pass
        after = time.monotonic() - signalled
        with pytest.raises(DaemonError) as caught_queued:
            for _ in queued:
                pass
        assert caught_queued.value.code == caught.value.code, caught_queued.value
    return caught.value, after


def test_killed_daemon_is_reported_as_stopped_within_seconds(home: Path) -> None:
    with DaemonProcess(home) as daemon:
        error, after = start_job_then(daemon, signal.SIGKILL)
    assert error.code == "daemon_unavailable", error
    assert "stopped" in error.message, error.message
    assert after < 150, after  # half the client's timeout: not a wait for the timeout
    print(f"\ndaemon killed mid-job: client told after {after:.2f} s: {error.message}")


def test_sigterm_mid_job_tells_the_client_the_daemon_is_shutting_down(home: Path) -> None:
    with DaemonProcess(home) as daemon:
        error, after = start_job_then(daemon, signal.SIGTERM)
        assert daemon.proc is not None and daemon.proc.returncode == 0
    assert error.code == "shutting_down", error
    assert "shutting down" in error.message, error.message
    print(f"\nSIGTERM mid-job: client told after {after:.2f} s: {error.message}")


# --------------------------------------------------------------------------- start races


def test_concurrent_starts_print_the_pid_of_the_serving_daemon(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    env = environment(tmp_path, endpoint)
    command = [sys.executable, "-m", "nst_daemon", "daemon", "start", "--endpoint", endpoint]
    starts = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        outputs = [proc.communicate(timeout=180) for proc in starts]
        assert [proc.returncode for proc in starts] == [0, 0, 0], outputs
        pids = {int(re.search(r"\(pid (\d+)\)", out).group(1)) for out, _ in outputs}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NST_HOME", str(tmp_path))
            serving = lifecycle.running_pid(endpoint)
            info = lifecycle.probe(endpoint, timeout=10)
        assert info is not None
        assert pids == {serving} == {info.pid}, (pids, serving, info.pid)
        print(f"\n3 concurrent starts all printed pid {serving}")
    finally:
        subprocess.run(
            [sys.executable, "-m", "nst_daemon", "daemon", "stop", "--endpoint", endpoint],
            env=env,
            capture_output=True,
            timeout=60,
        )
    # the starts that lost the race ended their own daemons: none takes the endpoint
    # over once the winner has stopped (a late one used to, a moment after the stop)
    time.sleep(3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NST_HOME", str(tmp_path))
        left = lifecycle.running_pid(endpoint)
        if left is not None:
            lifecycle.stop(endpoint)
    assert left is None, f"a daemon (pid {left}) serves after the stop"
