"""Real daemons for the tests and the benches: a ``python -m nst_daemon.server`` process on
a free loopback port, generated requests and their in-process reference pixels.

The daemon runs in the foreground of its own process (so a test knows its pid, can read
its memory from ``/proc`` and can kill it), in a temporary ``NST_HOME`` whose styles are
random fast-style networks saved by the test. Every process runs single-threaded so the
daemon and an in-process computation give bit-identical pictures.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import zmq

from nst_client.client import START_TIMEOUT_S, Client
from nst_client.errors import DaemonError
from nst_client.params import FastParams
from nst_client.protocol import (
    HelloRequest,
    Image,
    Result,
    ShutdownRequest,
    Status,
    StatusRequest,
    StylizeRequest,
)
from nst_core.transformer_net import TransformerNet, save_style_model

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def environment(home: Path, endpoint: str) -> dict[str, str]:
    """The environment of a process that uses ``home`` as data dir and reaches ``endpoint``."""
    env = dict(os.environ, NST_HOME=str(home), NST_ENDPOINT=endpoint, OMP_NUM_THREADS="1")
    env.pop("NST_DEBUG", None)
    return env


def random_net(seed: int) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet()


def save_random_style(home: Path, name: str, seed: int = 0, **meta: str) -> Path:
    """A user style ``name`` in ``home`` (a random network: no reference data needed)."""
    return save_style_model(
        home / "styles" / f"{name}.safetensors", random_net(seed), {"name": name, **meta}
    )


def noise_image(width: int, height: int, channels: int, seed: int) -> Image:
    """Random u8 pixels (``channels`` 1 to 4), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (height * width * channels,), generator=g, dtype=torch.uint8)
    return Image(width, height, channels, data.numpy().tobytes())


def stylize_request(image: Image, style: str = "rand", **params: Any) -> StylizeRequest:
    return StylizeRequest(image, style, params=FastParams(**params))


def request_pool(count: int, styles: Sequence[str] = ("rand", "other")) -> list[StylizeRequest]:
    """Distinct requests: sides 16 to 96 px, gray to RGBA, two strengths, several styles."""
    pool = []
    for i in range(count):
        width, height = 16 + (i * 37) % 81, 16 + (i * 53) % 81
        image = noise_image(width, height, 1 + i % 4, seed=100 + i)
        pool.append(
            stylize_request(
                image, style=styles[i % len(styles)], strength=(1.0, 0.6)[(i // len(styles)) % 2]
            )
        )
    return pool


def pipeline(
    client: Client, requests: Sequence[tuple[int, StylizeRequest]], in_flight: int
) -> Iterator[tuple[int, Result]]:
    """Run ``(tag, stylize request)`` pairs on one client with ``in_flight`` jobs
    outstanding (their replies interleave on its socket); yields ``(tag, result)``."""
    pending: deque[tuple[int, Iterator[Any]]] = deque()

    def finish() -> tuple[int, Result]:
        tag, events = pending.popleft()
        for event in events:
            if isinstance(event, Result):
                return tag, event
        raise AssertionError("a job ended without a result")

    for tag, req in requests:
        pending.append((tag, client.run(req)))
        if len(pending) >= in_flight:
            yield finish()
    while pending:
        yield finish()


def reference_results(home: Path, requests: Sequence[StylizeRequest]) -> list[bytes]:
    """The pixels the daemon must return, computed in this process, single-threaded, with
    ``home`` as the data dir (the daemon's job function on the same model files)."""
    from nst_daemon.execute import execute_stylize
    from nst_daemon.models import Models

    threads, saved = torch.get_num_threads(), os.environ.get("NST_HOME")
    torch.set_num_threads(1)
    os.environ["NST_HOME"] = str(home)
    try:
        models = Models("cpu")
        return [execute_stylize(r, models)["image"].data for r in requests]
    finally:
        torch.set_num_threads(threads)
        if saved is None:
            os.environ.pop("NST_HOME", None)
        else:
            os.environ["NST_HOME"] = saved


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """``predicate()``'s first truthy value within ``timeout`` seconds, else its last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def rss_kb(pid: int) -> int:
    """Resident memory of a process (``VmRSS`` in ``/proc/PID/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class DaemonProcess:
    """One daemon process; a context manager that stops (or kills) it at exit."""

    def __init__(
        self,
        home: Path,
        endpoint: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.home = home
        self.endpoint = endpoint or free_endpoint()
        self.args = list(args)
        self.env = {**environment(home, self.endpoint), **(env or {})}
        self.client_options = client_options or {}  # e.g. CURVE keys
        self.output_path = home / f"daemon-{free_port()}.out"
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "nst_daemon.server", "--endpoint", self.endpoint, *self.args]

    def launch(self) -> subprocess.Popen:
        """Start the process without waiting for it to answer."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def start(self, timeout: float = START_TIMEOUT_S) -> DaemonProcess:
        proc = self.launch()
        deadline = time.monotonic() + timeout
        with self.client(timeout=0.5) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited ({proc.returncode}): {self.output()}")
                with contextlib.suppress(DaemonError):
                    client.request(HelloRequest(), timeout=0.5)
                    return self
        self.kill()
        raise RuntimeError(f"the daemon did not answer within {timeout} s: {self.output()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def client(self, timeout: float = 30.0, **kwargs: Any) -> Client:
        return Client(
            self.endpoint, autostart=False, timeout=timeout, **{**self.client_options, **kwargs}
        )

    def status(self) -> Status:
        with self.client(timeout=5.0) as client:
            reply = client.request(StatusRequest())
            assert isinstance(reply, Status)
            return reply

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(DaemonError), self.client(timeout=5.0) as client:
            client.request(ShutdownRequest())
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> DaemonProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dealer(endpoint: str, context: zmq.Context | None = None) -> zmq.Socket:
    """A bare DEALER socket connected to ``endpoint`` (for raw, possibly hostile frames)."""
    sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = sock.sndhwm = 0  # the tests pipeline thousands of messages
    sock.connect(endpoint)
    return sock
