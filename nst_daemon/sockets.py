"""The daemon's ZeroMQ sockets: the ROUTER's options and who may reach it (loopback only,
unless CURVE encryption with a folder of allowed client keys), binding with errors a
person can act on, and the monitor of accepted and closed connections.

ZeroMQ drops frames over the message limit (ZMQ_MAXMSGSIZE), peers that do not finish
the handshake within ``HANDSHAKE_S`` and peers that stop answering heartbeats.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from nst_client import protocol
from nst_client.client import is_local_endpoint

HANDSHAKE_S = 10.0  # ZMQ_HANDSHAKE_IVL: a connection that says nothing is closed after this
HEARTBEAT_IVL_S = 10.0  # ZMTP pings to every peer (libzmq answers them by itself) ...
HEARTBEAT_TIMEOUT_S = 30.0  # ... and the connection closes when none comes back this long


class StartupError(RuntimeError):
    """The daemon cannot start (endpoint in use, unsafe bind, bad keys)."""


def is_loopback_endpoint(endpoint: str) -> bool:
    """Whether binding ``endpoint`` exposes the daemon to this machine only: the one rule
    of what is local (``nst_client.client.is_local_endpoint``, which clients use to
    decide whether they may start a daemon)."""
    return is_local_endpoint(endpoint)


def peer_is_local(endpoint: str, frame: zmq.Frame) -> bool:
    """For tcp, the peer's address (ZMQ_MSG property "Peer-Address") must be loopback."""
    if not endpoint.startswith("tcp://"):
        return True  # ipc: same machine by construction
    try:
        address = frame.get("Peer-Address")
        return ipaddress.ip_address(address).is_loopback
    except (zmq.ZMQError, ValueError):
        return False


def new_router(context: zmq.Context, limits: protocol.Limits) -> zmq.Socket:
    """The ROUTER socket with the message limit, the handshake time and heartbeats."""
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
    router.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_S * 1000))
    router.setsockopt(zmq.HEARTBEAT_IVL, int(HEARTBEAT_IVL_S * 1000))
    router.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(HEARTBEAT_TIMEOUT_S * 1000))
    return router


def refuse_exposed(endpoint: str) -> None:
    """Without CURVE, an endpoint reachable from other machines is refused."""
    if not is_loopback_endpoint(endpoint):
        raise StartupError(
            f"refusing to bind {endpoint}: it is reachable from other machines; "
            "bind 127.0.0.1 or enable CURVE encryption with --curve-secret and "
            "--curve-clients"
        )


def setup_curve(
    context: zmq.Context, router: zmq.Socket, secret_file: Path, clients: Path | None
) -> ThreadAuthenticator:
    """CURVE encryption on ``router``, clients allowed by their public key files in
    ``clients``; the authenticator thread, for the daemon to stop when it closes."""
    if clients is None or not clients.is_dir():
        raise StartupError(
            "CURVE needs --curve-clients, a folder of allowed client "
            "public keys (*.key files from zmq.auth.create_certificates)"
        )
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot read CURVE key {secret_file}: {exc}") from None
    if not secret:
        raise StartupError(f"{secret_file} holds no secret key (use the *.key_secret file)")
    auth = ThreadAuthenticator(context, log=logging.getLogger("nst_daemon.auth"))
    auth.start()
    try:
        auth.configure_curve(domain="*", location=str(clients))
    except BaseException:
        auth.stop()
        raise
    router.curve_secretkey = secret
    router.curve_publickey = public
    router.curve_server = True
    return auth


def bind_endpoint(router: zmq.Socket, endpoint: str) -> None:
    """Bind ``router`` (closed again on failure, with a message a person can act on)."""
    try:
        router.bind(endpoint)
    except zmq.ZMQError as exc:
        router.close()
        if exc.errno == zmq.EADDRINUSE:
            raise StartupError(
                f"cannot listen on {endpoint}: the address is already in use by "
                "another program; choose another with --endpoint"
            ) from None
        raise StartupError(f"cannot listen on {endpoint}: {exc}") from None


def open_monitor(context: zmq.Context, router: zmq.Socket, address: str) -> zmq.Socket:
    """Accepted and closed connections, without limit on the events waiting (a lost
    event would leave a connection uncounted)."""
    router.monitor(address, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
    monitor = context.socket(zmq.PAIR)
    monitor.rcvhwm = 0
    monitor.connect(address)
    return monitor
