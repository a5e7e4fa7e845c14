"""Client library for the neural style daemon (pyzmq + msgpack + stdlib only).

``Client`` sends requests (``nst_client.protocol`` dataclasses) over a DEALER socket and
matches replies by request id, so one client can have several jobs in flight; replies
come back as dataclasses too (``Hello``, ``Status``, ``Accepted``, ``Progress``,
``Result``; an ``Error`` reply raises ``DaemonError``). While it waits for a job it sends ``ping``
every ``protocol.PING_INTERVAL_S``; the daemon cancels the jobs of a client that went
silent, so stop iterating a ``submit()`` generator only by closing it (which cancels
the job). Not thread-safe: use one ``Client`` per thread.

A job's replies come on the connection that sent it: when that connection closes (the
daemon was killed or stopped), the job is lost, and ``submit`` says so at once
(``daemon_unavailable``) instead of waiting for the timeout.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import protocol
from .errors import DaemonError, DaemonUnavailable, ProtocolError
from .params import Params, TrainParams
from .protocol import (
    PING_INTERVAL_S,
    Accepted,
    Cancel,
    Error,
    Hello,
    HelloRequest,
    Image,
    JobEvent,
    PingRequest,
    Progress,
    Reply,
    Request,
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

R = TypeVar("R", bound=Reply)

PROBE_TIMEOUT_S = 2.0
START_TIMEOUT_S = 90.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_local_endpoint(endpoint: str) -> bool:
    """ipc:// endpoints and tcp:// on a loopback address can be started here."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:  # a literal address: all of 127.0.0.0/8 and ::1; never a name that merely looks so
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """Talks to one daemon; starts a local one on first use when none answers.

    ``autostart``: ``True`` runs ``python -m nst_daemon daemon start --endpoint EP``;
    a command list runs that command with ``--endpoint EP`` appended; ``False`` never
    starts anything. ``on_status`` receives "starting daemon…" / "loading models…".
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        autostart: bool | Sequence[str] = True,
        timeout: float = 30.0,
        curve_server_key: bytes | None = None,
        curve_client_keys: tuple[bytes, bytes] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint or protocol.default_endpoint()
        self.autostart = autostart
        self.timeout = timeout
        self.on_status = on_status
        self.info: Hello | None = None  # the daemon's hello, once connected
        self._curve = curve_server_key is not None
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.linger = 0
        if curve_server_key is not None:
            if curve_client_keys is None:
                raise ValueError("curve_server_key needs curve_client_keys=(public, secret)")
            self._socket.curve_serverkey = curve_server_key
            self._socket.curve_publickey, self._socket.curve_secretkey = curve_client_keys
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._disconnects = 0  # connections to the daemon that closed so far
        self._socket.connect(self.endpoint)
        self._inbox: dict[str, deque[dict[str, Any]]] = {}  # raw replies by request id
        self._last_ping = 0.0
        self._last_heard = 0.0

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg: dict[str, Any]) -> None:
        payload = protocol.encode(msg)
        limit = self.info.limits.max_message_bytes if self.info is not None else None
        if limit and len(payload) > limit:
            raise DaemonError(
                "too_large",
                f"the request is {len(payload):,} bytes; the daemon accepts at most "
                f"{limit:,} (use a smaller image or params.max_size)",
            )
        self._socket.send(payload, copy=False)

    def _pump(self, wait: float) -> None:
        """Wait up to ``wait`` s for the socket; file every message that arrived with its
        request (any message counts as a sign of life) and count closed connections."""
        events = dict(self._poller.poll(round(wait * 1000)))
        while self._monitor in events and self._monitor.poll(0):
            if recv_monitor_message(self._monitor)["event"] == zmq.EVENT_DISCONNECTED:
                self._disconnects += 1
        while True:
            try:
                payload = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = protocol.decode(payload)
            except ProtocolError:
                continue
            self._last_heard = time.monotonic()
            if protocol.request_id(msg) in self._inbox:
                self._inbox[msg["id"]].append(msg)

    def _receive(
        self, rid: str, wait: float, lost_after: int | None = None
    ) -> dict[str, Any] | None:
        """Next message for request ``rid`` within ``wait`` seconds, else ``None``.

        Messages for other pending requests are kept for them. With ``lost_after`` (the
        count of closed connections when the request was sent), raises
        ``DaemonUnavailable`` once a later connection closed and no message is left.
        """
        box = self._inbox.setdefault(rid, deque())
        deadline = time.monotonic() + wait
        while not box:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(remaining)
            if not box and lost_after is not None and self._disconnects > lost_after:
                raise DaemonUnavailable(
                    f"the connection to the daemon at {self.endpoint} closed during the "
                    "job: the daemon stopped (or dropped this client); the job is lost",
                    lost_job=True,
                )
        return box.popleft()

    def _await(
        self, rid: str, timeout: float, ping: bool = False, lost_after: int | None = None
    ) -> dict[str, Any] | None:
        """Next message for ``rid``; ``None`` once the daemon has been silent ``timeout`` s."""
        start = time.monotonic()
        while True:
            if ping:
                self._ping()
            remaining = timeout - (time.monotonic() - max(start, self._last_heard))
            if remaining <= 0:
                return None
            msg = self._receive(rid, min(PING_INTERVAL_S, remaining), lost_after)
            if msg is not None:
                return msg

    def _ping(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= PING_INTERVAL_S:
            self._last_ping = now
            self._socket.send(protocol.encode(PingRequest().to_wire()))

    @staticmethod
    def _typed(msg: dict[str, Any]) -> Reply:
        """The reply as its dataclass; an ``Error`` reply raises ``DaemonError``."""
        try:
            reply = protocol.parse_reply(msg)
        except ProtocolError as exc:
            raise DaemonError("internal", f"malformed reply from the daemon: {exc}") from None
        if isinstance(reply, Error):
            raise reply.exception()
        return reply

    def request(self, request: Request, timeout: float | None = None) -> Reply:
        """Send one request and wait for its reply (``DaemonError`` on error or timeout)."""
        msg = request.to_wire()
        self._inbox[msg["id"]] = deque()
        try:
            self._send(msg)
            reply = self._await(msg["id"], self.timeout if timeout is None else timeout)
        finally:
            self._inbox.pop(msg["id"], None)
        if reply is None:
            raise DaemonError(
                "timeout",
                f"no answer from the daemon at {self.endpoint} within "
                f"{self.timeout if timeout is None else timeout:g} s",
            )
        return self._typed(reply)

    def _expect(self, request: Request, kind: type[R], timeout: float | None = None) -> R:
        reply = self.request(request, timeout)
        if not isinstance(reply, kind):
            raise DaemonError(
                "internal",
                f"the daemon answered {request.TYPE!r} with {reply.TYPE!r}, not {kind.TYPE!r}",
            )
        return reply

    def probe(self, timeout: float = PROBE_TIMEOUT_S) -> Hello:
        """The daemon's hello within ``timeout`` s, never starting one (``DaemonError``
        ``timeout`` when none answers)."""
        self.info = self._expect(HelloRequest(), Hello, timeout)
        return self.info

    # ------------------------------------------------------------------ connecting

    def connect(self) -> Hello:
        """Make sure a daemon answers (starting one if allowed); returns its hello."""
        if self.info is not None:
            return self.info
        try:
            return self.probe()
        except DaemonError as exc:
            if exc.code != "timeout":
                raise
        self.info = self._start_daemon()
        return self.info

    def _start_command(self) -> list[str] | None:
        if not self.autostart or self._curve or not is_local_endpoint(self.endpoint):
            return None
        if self.autostart is True:
            base = [sys.executable, "-m", "nst_daemon", "daemon", "start"]
        else:
            base = list(self.autostart)
        return [*base, "--endpoint", self.endpoint]

    def _unavailable(self, reason: str) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"daemon not running at {self.endpoint} and could not be started: {reason}; "
            "start it with `nst daemon start`"
        )

    def _start_daemon(self) -> Hello:
        command = self._start_command()
        if command is None:
            hint = " (check the CURVE keys)" if self._curve else ""
            raise DaemonUnavailable(
                f"no daemon answers at {self.endpoint}{hint}; start it with `nst daemon start`"
            )
        self._status("starting daemon…")
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                )
            except OSError as exc:
                raise self._unavailable(f"cannot run {command[0]!r} ({exc})") from None
            deadline = time.monotonic() + START_TIMEOUT_S
            exited_at = None
            while time.monotonic() < deadline:
                try:
                    return self.probe(timeout=0.5)
                except DaemonError as exc:
                    if exc.code != "timeout":
                        raise
                code = proc.poll()
                if code is not None and exited_at is None:
                    exited_at = time.monotonic()
                if code not in (None, 0):
                    errors.seek(0)
                    text = errors.read().decode(errors="replace").strip()
                    last = text.splitlines()[-1] if text else f"exit status {code}"
                    raise self._unavailable(last)
                if exited_at is not None and time.monotonic() - exited_at > 10:
                    break
            proc.poll()
            raise self._unavailable(f"no answer within {START_TIMEOUT_S:g} s")

    def _status(self, text: str) -> None:
        if self.on_status is not None:
            self.on_status(text)

    # ------------------------------------------------------------------ requests

    def hello(self) -> Hello:
        self.connect()
        self.info = self._expect(HelloRequest(), Hello)
        return self.info

    def styles(self) -> list[StyleEntry]:
        self.connect()
        return list(self._expect(StylesRequest(), Styles).styles)

    def status(self) -> Status:
        self.connect()
        return self._expect(StatusRequest(), Status)

    def cancel(self, job_id: str) -> None:
        self.connect()
        self.request(Cancel(job_id))

    def shutdown(self) -> None:
        self.connect()
        self.request(ShutdownRequest())

    def run(
        self, request: StylizeRequest | TrainRequest, timeout: float | None = None
    ) -> Generator[JobEvent, None, None]:
        """Submit a job; yield ``Accepted`` and ``Progress`` events, last the ``Result``.

        Raises ``DaemonError`` on an error reply or on timeout; closing the generator
        early cancels the job.
        """
        return self._job(request.to_wire(), timeout)

    def submit(
        self,
        image: Image | StylizeRequest,
        *,
        style: str | None = None,
        style_image: Image | Sequence[Image] | None = None,
        method: str = "fast",
        mask: Image | None = None,
        params: Params | Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Generator[JobEvent, None, None]:
        """``run`` for a ``StylizeRequest``, or for its fields given one by one; these
        are sent as they are, for the daemon to check (a ``params`` map included)."""
        if isinstance(image, StylizeRequest):
            return self.run(image, timeout)
        if isinstance(style_image, Image):
            style_image = [style_image]
        if isinstance(params, Params):
            params = params.to_wire()
        msg = protocol.make_request(
            "stylize",
            image=image.to_wire(),
            method=method,
            style=style,
            style_image=[s.to_wire() for s in style_image] if style_image else None,
            mask=mask.to_wire() if mask is not None else None,
            params=params,
        )
        return self._job(msg, timeout)

    def stylize(
        self,
        image: Image | StylizeRequest,
        *,
        style: str | None = None,
        style_image: Image | Sequence[Image] | None = None,
        method: str = "fast",
        mask: Image | None = None,
        params: Params | Mapping[str, Any] | None = None,
        on_progress: Callable[[Accepted | Progress], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run a job to the end; ``on_progress`` gets every ``Accepted``/``Progress``."""
        events = self.submit(
            image,
            style=style,
            style_image=style_image,
            method=method,
            mask=mask,
            params=params,
            timeout=timeout,
        )
        return self._drain(events, on_progress)

    def train(
        self,
        style_image: Image | TrainRequest,
        *,
        name: str = "",
        params: TrainParams | Mapping[str, Any] | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> Generator[JobEvent, None, None]:
        """Train a fast-style model; yields events like ``submit``, last the ``Result``.

        ``overwrite`` lets the new style replace a user style of the same name.
        """
        if isinstance(style_image, TrainRequest):
            return self.run(style_image, timeout)
        if isinstance(params, TrainParams):
            params = params.to_wire()
        msg = protocol.make_request(
            "train",
            style_image=style_image.to_wire(),
            name=name,
            params=params,
            overwrite=overwrite or None,
        )
        return self._job(msg, timeout)

    @staticmethod
    def _drain(
        events: Iterator[JobEvent], on_progress: Callable[[Accepted | Progress], None] | None
    ) -> Result:
        for event in events:
            if isinstance(event, Result):
                return event
            if on_progress is not None:
                on_progress(event)
        raise DaemonError("internal", "the daemon ended the job without a result")

    def _job(self, msg: dict[str, Any], timeout: float | None) -> Generator[JobEvent, None, None]:
        self.connect()
        rid = msg["id"]
        self._inbox[rid] = deque()
        self._pump(0)  # connections closed before this one count no more
        connection = self._disconnects
        self._send(msg)  # before the generator starts: size errors raise at once
        return self._events(rid, self.timeout if timeout is None else timeout, connection)

    def _events(self, rid: str, timeout: float, connection: int) -> Generator[JobEvent, None, None]:
        job_id = None
        finished = False
        try:
            while True:
                msg = self._await(rid, timeout, ping=True, lost_after=connection)
                if msg is None:
                    raise DaemonError("timeout", f"no message from the daemon for {timeout:g} s")
                finished = msg.get("type") in ("error", "result")
                event = self._typed(msg)
                if not isinstance(event, Accepted | Progress | Result):
                    continue  # not a job event: a newer daemon's, ignored
                job_id = event.job_id or job_id
                if isinstance(event, Progress) and event.stage == "loading":
                    self._status("loading models…")
                yield event
                if finished:
                    return
        finally:
            self._inbox.pop(rid, None)
            if not finished and job_id is not None and not self._socket.closed:
                cancel = Cancel(job_id).to_wire()
                with contextlib.suppress(zmq.ZMQError):
                    self._socket.send(protocol.encode(cancel))
