"""Bounds on the ROUTER socket's connections: how many are open, and how many bytes they
hold in messages that have not fully arrived.

ZeroMQ bounds one message (ZMQ_MAXMSGSIZE) and drops peers that never finish the
handshake (ZMQ_HANDSHAKE_IVL) or stop answering heartbeats (ZMQ_HEARTBEAT_TIMEOUT), but
a bound socket accepts any number of connections (ZMQ_MAX_SOCKETS counts sockets, not
connections) and each may hold a partly received message of up to ZMQ_MAXMSGSIZE. The
socket monitor reports every accepted connection's descriptor; the daemon closes those
beyond its limits itself, with ``shutdown(2)`` on the descriptor (libzmq then sees the
peer gone and cleans up as for any disconnect). A descriptor is recognised by its inode,
so one reused by a newer connection is never closed by mistake.

Partly received bytes are measured on TCP: the kernel's count of bytes received on the
connection (``TCP_INFO``) less the wire size of the messages that arrived.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

log = logging.getLogger("nst_daemon.connections")

#: Handshakes (greeting, READY, CURVE) and heartbeats are not messages; allow for them.
HANDSHAKE_SLACK = 64 << 10
#: Below this a connection is not counted as holding a partial message.
RECEIVING_MIN = 1 << 20
_TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received in struct tcp_info (Linux 4.1+)
_CURVE_OVERHEAD = 33  # a CURVE MESSAGE command around each frame: name, nonce, MAC, flags


def frame_wire_size(size: int, curve: bool = False) -> int:
    """Bytes one ZMTP frame of ``size`` bytes takes on the wire."""
    if curve:
        size += _CURVE_OVERHEAD
    return size + (2 if size < 256 else 9)


@contextlib.contextmanager
def _borrowed(fd: int) -> Iterator[socket.socket]:
    """A socket object on libzmq's descriptor that never closes it."""
    sock = socket.socket(fileno=fd)
    try:
        yield sock
    finally:
        sock.detach()


def _inode(fd: int) -> int | None:
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None


def _bytes_received(fd: int) -> int | None:
    """The kernel's count of bytes received on a TCP connection, ``None`` if not TCP."""
    try:
        with _borrowed(fd) as sock:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCPI_BYTES_RECEIVED + 8:
        return None
    return struct.unpack_from("Q", info, _TCPI_BYTES_RECEIVED)[0]


@dataclass
class Connection:
    fd: int
    inode: int
    opened: float
    last_message: float | None = None  # None: has not sent a whole message yet
    delivered: int = 0  # wire bytes of the messages that arrived
    pending: int = 0  # bytes received that are not yet a whole message, last measured
    stalled: bool = False  # pending did not change since the measure before

    def idle_order(self) -> tuple[bool, float]:
        """Sort key: silent connections first, then the longest idle."""
        return self.last_message is not None, self.last_message or self.opened


class Connections:
    """The open connections of one ROUTER socket, and which to close."""

    def __init__(self, max_open: int, max_receiving: int | None, curve: bool = False) -> None:
        self.max_open = max_open
        self.max_receiving = max_receiving
        self.curve = curve
        self.open: dict[int, Connection] = {}
        self.closed_count = 0  # connections this daemon closed itself

    def _current(self, fd: int, now: float) -> Connection | None:
        """The entry for the connection now on ``fd`` (replacing a stale one)."""
        inode = _inode(fd)
        if inode is None:
            self.open.pop(fd, None)
            return None
        conn = self.open.get(fd)
        if conn is None or conn.inode != inode:
            conn = self.open[fd] = Connection(fd, inode, now)
        return conn

    def accepted(self, fd: int, now: float) -> None:
        self._current(fd, now)

    def disconnected(self, fd: int) -> None:
        self.open.pop(fd, None)

    def message(self, fd: int, sizes: Iterable[int], now: float) -> None:
        """A whole message arrived on ``fd`` (``sizes``: its frames' lengths)."""
        conn = self._current(fd, now)
        if conn is not None:
            conn.last_message = now
            conn.delivered += sum(frame_wire_size(n, self.curve) for n in sizes)

    def to_close(self, busy_fds: set[int]) -> list[tuple[Connection, str]]:
        """Connections to close now, each with why: beyond ``max_open`` the idle ones
        (never those with jobs), beyond ``max_receiving`` those holding partial messages
        (stalled ones first, largest first)."""
        chosen: list[tuple[Connection, str]] = []
        if len(self.open) > self.max_open:
            self._forget_stale()
            extra = len(self.open) - self.max_open
            idle = sorted(
                (c for c in self.open.values() if c.fd not in busy_fds), key=Connection.idle_order
            )
            chosen += [
                (c, f"over {self.max_open} connections (--max-connections)")
                for c in idle[: max(extra, 0)]
            ]
        if self.max_receiving is not None:
            chosen += self._over_receiving({c.fd for c, _ in chosen})
        return chosen

    def _forget_stale(self) -> None:
        for fd, conn in list(self.open.items()):
            if _inode(fd) != conn.inode:
                del self.open[fd]

    def _measure(self) -> list[Connection]:
        receiving = []
        for conn in self.open.values():
            received = _bytes_received(conn.fd)
            if received is None:
                continue
            pending = max(0, received - conn.delivered - HANDSHAKE_SLACK)
            conn.stalled, conn.pending = pending == conn.pending, pending
            if pending >= RECEIVING_MIN:
                receiving.append(conn)
        return receiving

    def _over_receiving(self, closing: set[int]) -> list[tuple[Connection, str]]:
        assert self.max_receiving is not None
        receiving = [c for c in self._measure() if c.fd not in closing]
        held = sum(c.pending for c in receiving)
        chosen = []
        for conn in sorted(receiving, key=lambda c: (not c.stalled, -c.pending)):
            if held <= self.max_receiving:
                break
            held -= conn.pending
            chosen.append(
                (
                    conn,
                    f"{conn.pending / (1 << 20):,.0f} MiB of a message in "
                    f"flight, over {self.max_receiving >> 20} MiB (--max-receiving-mb)",
                )
            )
        return chosen

    def close(self, conn: Connection) -> bool:
        """Close ``conn`` if its descriptor still is that connection."""
        if _inode(conn.fd) != conn.inode:
            self.open.pop(conn.fd, None)
            return False
        try:
            with _borrowed(conn.fd) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("cannot close connection %d: %s", conn.fd, exc)
            return False
        self.open.pop(conn.fd, None)
        self.closed_count += 1
        return True
