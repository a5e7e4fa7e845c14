"""The daemon: a ZeroMQ ROUTER loop in the main thread, one worker thread per device.

Only the main thread touches the ROUTER socket. Workers hand their replies to it through
an inproc PUSH/PULL pair.

Clients that go away: a waiting client pings every ``PING_INTERVAL_S``. One that stays
silent for ``client_silence_s`` is gone and its jobs are cancelled. When the socket
monitor reports a closed connection, the clients whose messages came in on that file
descriptor (ZMQ_SRCFD) become suspects. Descriptors are reused by new connections, so
a closed connection alone never cancels anything: a suspect is gone when a probe finds
it unroutable (at once), or after ``SUSPECT_SILENCE_S`` (two missed pings).

Limits (a local client must not take the daemon down or lock others out): ZeroMQ drops
frames over ``--max-message-mb``, peers that do not finish the handshake within
``sockets.HANDSHAKE_S`` and peers that stop answering heartbeats; ``connections.Connections``
closes idle connections beyond ``--max-connections`` and partial messages beyond
``--max-receiving-mb``; the queue refuses jobs beyond its per-client and total quotas
(``jobs.QueueLimits``) with ``busy``.

Run in the foreground with ``python -m nst_daemon.server`` (or ``nst daemon run``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace

import torch
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from nst_client import protocol
from nst_client.errors import ProtocolError
from nst_client.protocol import Error, Ok, Reply, Request, Result, StylizeRequest, TrainRequest
from nst_core.devices import describe_device, memory_info
from nst_core.errors import NSTError
from nst_core.styles import new_style_path

from . import __version__
from .advice import weights_status
from .connections import Connections
from .jobs import Job, JobQueue, Worker
from .lifecycle import DaemonRunning, PidLock, setup_logging
from .models import Models
from .server_config import (
    ServerConfig,
    add_arguments,
    config_from_args,
    default_max_connections,
    descriptor_limit,
)
from .sockets import (
    StartupError,
    bind_endpoint,
    new_router,
    open_monitor,
    peer_is_local,
    refuse_exposed,
    setup_curve,
)

log = logging.getLogger("nst_daemon.server")

CAPABILITIES = [
    "fast",
    "gatys",
    "train",
    "mask",
    "max_size",
    "preview",
    "cancel",
    "clip",
    "speed",
]
HOUSEKEEPING_S = 0.25
SUSPECT_SILENCE_S = 2 * protocol.PING_INTERVAL_S
MONITOR_BATCH = 1000  # socket events handled per loop turn


def style_entries(preview_size: int = 96) -> list[protocol.StyleEntry]:
    """The catalogue for ``styles`` replies, each with a small preview (cached per file)."""
    from nst_core.images import to_pixels
    from nst_core.styles import list_styles, style_preview

    entries = []
    for info in list_styles():
        try:
            preview = style_preview(info.path, preview_size)
            h, w = preview.shape[-2:]
            image = protocol.Image(w, h, 3, to_pixels(preview, None, 3))
        except NSTError as exc:
            log.warning("no preview for style %s: %s", info.name, exc)
            image = None
        entries.append(
            protocol.StyleEntry(
                info.name,
                info.title or "",
                info.artist or "",
                info.year or "",
                info.licence or "",
                info.source or "",
                image,
                tuple(info.variants),
            )
        )
    return entries


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.context = zmq.Context()
        # The VGG file is chosen once (nst_core.weights.choose_weights), named in hello/status.
        self.vgg_weights = weights_status("vgg16", config.vgg_weights)
        self.models = Models(
            config.device, vgg_weights=self.vgg_weights["path"] or config.vgg_weights
        )
        self.queue = JobQueue(config.queue)
        limits = config.limits
        self.connections = Connections(
            config.max_connections or default_max_connections(descriptor_limit()),
            config.max_receiving_bytes or 2 * limits.max_message_bytes,
            curve=config.curve_secret is not None,
        )
        self.jobs: dict[str, Job] = {}
        self.last_seen: dict[bytes, float] = {}
        self.fds: dict[bytes, int] = {}  # client identity -> its connection's descriptor
        self.suspects: set[bytes] = set()  # clients whose connection was reported closed
        self.started = time.monotonic()
        self._stopping = threading.Event()
        self._auth: ThreadAuthenticator | None = None
        self._outbox_address = f"inproc://outbox-{id(self)}"
        self._local = threading.local()
        self.router: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.outbox: zmq.Socket | None = None
        self.worker = Worker(self.queue, self.models, self._emit)

    # ------------------------------------------------------------------ setup

    def bind(self) -> None:
        cfg = self.config
        router = new_router(self.context, cfg.limits)
        if cfg.curve_secret is not None:
            self._auth = setup_curve(self.context, router, cfg.curve_secret, cfg.curve_clients)
        else:
            refuse_exposed(cfg.endpoint)
        bind_endpoint(router, cfg.endpoint)
        # a send to a client whose connection is gone fails (EHOSTUNREACH) instead of
        # vanishing: replies to gone clients are logged, and suspects can be probed
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router = router
        self.monitor = open_monitor(self.context, router, f"inproc://monitor-{id(self)}")
        self.outbox = self.context.socket(zmq.PULL)
        self.outbox.bind(self._outbox_address)
        log.info(
            "listening on %s (device %s, pid %d, at most %d connections)",
            cfg.endpoint,
            describe_device(self.models.device),
            os.getpid(),
            self.connections.max_open,
        )

    # ------------------------------------------------------------------ replies

    def _emit(self, job: Job, reply: Reply) -> None:
        """Send a job's reply to its client; callable from any thread."""
        final = b"1" if isinstance(reply, Result | Error) else b""
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self._local.push = self.context.socket(zmq.PUSH)
            sock.linger = 1000
            sock.connect(self._outbox_address)
        payload = protocol.encode(reply.to_wire(job.request_id))
        sock.send_multipart([job.owner, job.id.encode(), final, payload])

    def _send(self, identity: bytes, rid: str, reply: Reply) -> None:
        assert self.router is not None
        try:
            payload = protocol.encode(reply.to_wire(rid))
            self.router.send_multipart([identity, payload], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client's queue is full or it is gone
            log.warning("reply to %s dropped: %s", identity.hex(), exc)

    def _forward_outbox(self) -> None:
        assert self.outbox is not None and self.router is not None
        while True:
            try:
                identity, job_id, final, payload = self.outbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self.router.send_multipart([identity, payload], flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("reply to %s dropped: %s", identity.hex(), exc)
            if final:
                self.jobs.pop(job_id.decode(), None)

    # ------------------------------------------------------------------ requests

    def _handle(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        self.last_seen[identity] = time.monotonic()
        self.suspects.discard(identity)
        with contextlib.suppress(zmq.ZMQError):
            self.fds[identity] = fd = frames[-1].get(zmq.SRCFD)
            self.connections.message(fd, (len(f) for f in frames[1:]), time.monotonic())
        rid = ""
        reply: Reply
        try:
            if len(frames) != 2:
                raise ProtocolError("bad_request", f"expected one frame, got {len(frames) - 1}")
            msg = protocol.decode(frames[1].buffer)
            rid = protocol.request_id(msg)
            request = protocol.parse_request(msg, self.config.limits)
            reply = getattr(self, f"_on_{request.TYPE}")(identity, rid, request, frames[1])
        except ProtocolError as exc:
            log.warning("refused a request from %s: %s: %s", identity.hex(), exc.code, exc)
            reply = Error(exc.code, exc.message)
        except NSTError as exc:
            log.warning("request from %s failed: %s: %s", identity.hex(), exc.code, exc)
            reply = Error(exc.code, str(exc))
        except Exception as exc:
            log.exception("request from %s failed", identity.hex())
            reply = Error("internal", f"internal error: {exc}")
        self._send(identity, rid, reply)

    def hello_info(self) -> protocol.Hello:
        return protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION,
            version=__version__,
            torch=torch.__version__,
            device=describe_device(self.models.device),
            capabilities=tuple(CAPABILITIES),
            limits=self.config.limits,
            heartbeat=protocol.Heartbeat(protocol.PING_INTERVAL_S, self.config.client_silence_s),
            pid=os.getpid(),
            vgg_weights=self.vgg_weights,
        )

    def _on_hello(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        return self.hello_info()

    def _on_ping(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        return Ok()

    def _on_styles(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        return protocol.Styles(tuple(style_entries()))

    def _on_status(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        queued = self.queue.queued()
        loaded = self.models.loaded()
        return protocol.Status(
            running=tuple(job.describe() for job in list(self.worker.running)),
            queue=tuple(replace(job.describe(), position=i) for i, job in enumerate(queued)),
            device=describe_device(self.models.device),
            memory=memory_info(self.models.device),
            models=protocol.ModelsInfo(
                loaded["vgg"], tuple(loaded["fast"]), loaded["style_targets"]
            ),
            clients=len(self.last_seen),
            uptime_s=time.monotonic() - self.started,
            pid=os.getpid(),
            vgg_weights=self.vgg_weights,
        )

    def _submit(self, identity: bytes, job: Job) -> Reply:
        if self._stopping.is_set():
            raise ProtocolError("shutting_down", "the daemon is shutting down")
        job.owner = identity
        position = self.queue.put(job)
        self.jobs[job.id] = job
        log.info(
            "job %s (%s) queued for %s at position %d", job.id, job.method, identity.hex(), position
        )
        return protocol.Accepted(job.id, position)

    def _on_stylize(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        assert isinstance(request, StylizeRequest)
        return self._submit(identity, Job(request, rid))

    def _on_train(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        assert isinstance(request, TrainRequest)
        new_style_path(request.name, overwrite=request.overwrite)  # a taken name: refused now
        return self._submit(identity, Job(request, rid))

    def _on_cancel(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        assert isinstance(request, protocol.Cancel)
        job_id = request.job_id
        job = self.jobs.get(job_id)
        # job ids are visible to every client (status): only the submitter may cancel
        if (
            job is None
            or job.owner != identity
            or not self.cancel_job(job_id, "cancelled on request")
        ):
            raise ProtocolError(
                "unknown_job", f"no queued or running job {job_id!r} submitted by this client"
            )
        return Ok(job_id)

    def _on_shutdown(self, identity: bytes, rid: str, request: Request, frame: zmq.Frame) -> Reply:
        if not peer_is_local(self.config.endpoint, frame):
            raise ProtocolError("forbidden", "shutdown is only accepted from this machine")
        log.info("shutdown requested by %s", identity.hex())
        self._stopping.set()
        return Ok()

    # ------------------------------------------------------------------ cancellation

    def cancel_job(self, job_id: str, why: str, code: str = "cancelled") -> bool:
        """Stop a job; it ends with error ``code`` (``why`` as the message)."""
        job = self.jobs.get(job_id)
        if job is None:
            return False
        log.info("job %s: %s", job_id, why)
        job.stop(code, why)
        if self.queue.remove(job_id) is not None:  # never started: answer here
            self._emit(job, job.stopped_reply())
        return True

    def _on_monitor_events(self) -> None:
        assert self.monitor is not None
        now = time.monotonic()
        for _ in range(MONITOR_BATCH):
            if not self.monitor.poll(0):
                break
            event = recv_monitor_message(self.monitor)
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.connections.accepted(fd, now)
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                log.debug("connection %d closed", fd)
                self.connections.disconnected(fd)
                self.suspects.update(i for i, f in self.fds.items() if f == fd)

    def _enforce_connection_limits(self) -> None:
        """Close idle connections beyond the limit and partial messages over the budget."""
        busy = {self.fds.get(job.owner) for job in self.jobs.values()}
        for conn, why in self.connections.to_close({fd for fd in busy if fd is not None}):
            if self.connections.close(conn):
                log.warning("closed connection %d: %s", conn.fd, why)

    def _client_gone(self, identity: bytes, why: str) -> None:
        self.last_seen.pop(identity, None)
        self.fds.pop(identity, None)
        self.suspects.discard(identity)
        for job in list(self.jobs.values()):
            if job.owner == identity and not job.cancel.cancelled:
                self.cancel_job(job.id, f"client {why}")

    def _reachable(self, identity: bytes) -> bool:
        """Probe a suspect with an empty frame (clients ignore it): a client whose
        connection closed is no longer routable, so its jobs stop at once instead of
        after two missed pings."""
        assert self.router is not None
        try:
            self.router.send_multipart([identity, b""], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            return exc.errno != zmq.EHOSTUNREACH  # EAGAIN: connected, its queue is full
        return True

    def _housekeeping(self) -> None:
        self._enforce_connection_limits()
        for identity in [i for i in self.suspects if not self._reachable(i)]:
            self._client_gone(identity, "disconnected")
        now = time.monotonic()
        busy = {job.owner for job in self.jobs.values()}
        for identity, seen in list(self.last_seen.items()):
            silent = now - seen
            if identity in self.suspects:
                limit, why = SUSPECT_SILENCE_S, f"disconnected ({silent:.1f} s silent)"
            else:
                limit, why = self.config.client_silence_s, f"silent for {silent:.1f} s"
            if identity in busy and silent > limit:
                self._client_gone(identity, why)
            elif identity not in busy and silent > 60:
                self._client_gone(identity, "idle")

    # ------------------------------------------------------------------ main loop

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def serve(self) -> None:
        """Serve until ``shutdown``/SIGTERM, then cancel jobs and close."""
        assert self.router is not None and self.outbox is not None
        self.worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.outbox, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        next_housekeeping = 0.0
        while not self._stopping.is_set():
            events = dict(poller.poll(round(HOUSEKEEPING_S * 1000)))
            if self.monitor in events:  # before new messages: a reused descriptor is new
                self._on_monitor_events()
                if len(self.connections.open) > self.connections.max_open:
                    self._enforce_connection_limits()  # now: the descriptors may run out
            if self.outbox in events:
                self._forward_outbox()
            if self.router in events:
                for _ in range(100):  # then let the outbox and housekeeping run
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
            if time.monotonic() >= next_housekeeping:
                self._housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_S
        self._shutdown()

    def _shutdown(self) -> None:
        log.info("stopping: cancelling %d job(s)", len(self.jobs))
        why = "the daemon is shutting down; the job was stopped"
        for job in self.queue.close():
            job.stop("shutting_down", why)
            self._emit(job, job.stopped_reply())
        for job in list(self.jobs.values()):
            job.stop("shutting_down", why)
        self.worker.stop()
        self.worker.join(timeout=10)
        time.sleep(0.05)
        self._forward_outbox()
        self.close()
        log.info("stopped")

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self.context.destroy(linger=200)


# --------------------------------------------------------------------------- entry point


def run(config: ServerConfig, verbose: bool = False, log_to_stderr: bool = True) -> int:
    """Run a daemon in this process until it is stopped; returns an exit status."""
    log_path = setup_logging(
        config.endpoint, logging.DEBUG if verbose else logging.INFO, stderr=log_to_stderr
    )
    lock = PidLock(config.endpoint)
    try:
        lock.acquire()
    except DaemonRunning as exc:
        print(f"nst daemon: {exc}", file=sys.stderr)
        return 1
    server = Server(config)
    try:
        server.bind()
    except StartupError as exc:
        log.error("%s", exc)
        print(f"nst daemon: {exc}", file=sys.stderr)
        server.close()
        lock.release()
        return 1
    lock.mark_ready()
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    log.info("log file %s", log_path)
    try:
        server.serve()
    finally:
        lock.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nst_daemon.server",
        description="Run the neural style daemon in the foreground.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(config_from_args(args), verbose=args.verbose, log_to_stderr=sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main())
