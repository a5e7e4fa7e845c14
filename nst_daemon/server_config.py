"""The daemon's settings: ``ServerConfig``, the command-line options that fill it (shared
with ``nst daemon start|run``) and the default connection limit, from the descriptor limit.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
from dataclasses import dataclass, field
from pathlib import Path

from nst_client import protocol

from .jobs import MIB, QueueLimits

#: descriptors kept for the daemon's own use (files, ZeroMQ internals) below the limit
RESERVED_FDS = 128
MAX_CONNECTIONS = 1024


@dataclass
class ServerConfig:
    endpoint: str = protocol.DEFAULT_ENDPOINT
    device: str | None = None
    limits: protocol.Limits = field(default_factory=protocol.Limits)
    client_silence_s: float = protocol.CLIENT_SILENCE_S
    queue: QueueLimits = field(default_factory=QueueLimits)
    max_connections: int | None = None  # None: from the descriptor limit
    max_receiving_bytes: int | None = None  # None: twice the message limit
    curve_secret: Path | None = None  # server certificate with secret key (zmq.auth format)
    curve_clients: Path | None = None  # folder of allowed client public certificates
    vgg_weights: Path | None = None


def descriptor_limit() -> int:
    """Raise the soft limit on open descriptors (up to the hard one, at most 4096);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 4096) if hard == resource.RLIM_INFINITY else min(hard, max(soft, 4096))
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


def default_max_connections(fd_limit: int) -> int:
    return max(8, min(MAX_CONNECTIONS, fd_limit - RESERVED_FDS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's options (shared with ``nst daemon start|run``)."""
    parser.add_argument(
        "--endpoint",
        default=None,
        help="tcp://127.0.0.1:PORT or ipc://PATH (default: $NST_ENDPOINT or "
        f"{protocol.DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=protocol.DEFAULT_MAX_PIXELS,
        help="largest image accepted, in pixels",
    )
    parser.add_argument(
        "--max-message-mb",
        type=int,
        default=protocol.DEFAULT_MAX_MESSAGE_BYTES >> 20,
        help="largest message accepted, in MiB",
    )
    parser.add_argument(
        "--client-silence",
        type=float,
        default=protocol.CLIENT_SILENCE_S,
        help="cancel the jobs of a client silent for this many seconds",
    )
    defaults = QueueLimits()
    parser.add_argument(
        "--max-queued-per-client",
        type=int,
        default=defaults.per_client_jobs,
        metavar="N",
        help="jobs one client may have waiting (default: %(default)s); more get busy",
    )
    parser.add_argument(
        "--max-queued-mb-per-client",
        type=int,
        default=defaults.per_client_bytes // MIB,
        metavar="MB",
        help="images one client's waiting jobs may hold (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queued-mb",
        type=int,
        default=defaults.total_bytes // MIB,
        metavar="MB",
        help="images all waiting jobs may hold (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="open connections; beyond this the longest idle ones without "
        f"jobs are closed (default: the descriptor limit less {RESERVED_FDS}, "
        f"at most {MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--max-receiving-mb",
        type=int,
        default=None,
        metavar="MB",
        help="partly received messages held at once, all connections "
        "together; beyond it stalled ones are closed first (default: twice "
        "--max-message-mb)",
    )
    parser.add_argument(
        "--curve-secret",
        type=Path,
        default=None,
        help="server secret key file; required to bind a non-loopback address",
    )
    parser.add_argument(
        "--curve-clients", type=Path, default=None, help="folder of allowed client public key files"
    )
    parser.add_argument("--vgg-weights", type=Path, default=None, help="VGG weights file")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        endpoint=args.endpoint or protocol.default_endpoint(),
        device=args.device,
        limits=protocol.Limits(args.max_pixels, args.max_message_mb << 20),
        client_silence_s=args.client_silence,
        queue=QueueLimits(
            per_client_jobs=args.max_queued_per_client,
            total_bytes=args.max_queued_mb * MIB,
            per_client_bytes=args.max_queued_mb_per_client * MIB,
        ),
        max_connections=args.max_connections,
        max_receiving_bytes=args.max_receiving_mb * MIB if args.max_receiving_mb else None,
        curve_secret=args.curve_secret,
        curve_clients=args.curve_clients,
        vgg_weights=args.vgg_weights,
    )
