"""The ``nst`` command: stylise pictures, run batches, manage styles, weights and the daemon.

Every command that computes talks to the daemon (started on demand) unless ``--local``
runs it in this process. Only ``--local`` and the commands that touch local files
(``styles import``, ``weights``, ``daemon``) import torch, so a daemon round trip starts
fast. Every failure is one line on stderr, ``nst: error: ...``, and a non-zero exit code.

``parser`` holds the argument tables, ``pictures`` and ``manage`` the commands,
``options`` turns arguments into a run, ``render`` draws bars and status text and
``errors`` holds the exit codes and hints.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence

from nst_client.errors import ProtocolError
from nst_client.text import cli_hint
from nst_core.errors import NSTError, ParameterError
from nst_daemon.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    report,
    say,
)
from nst_daemon.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "daemon" or args.action not in ("start", "run"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.server_args = extra
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        report(str(exc), exc.hint)
        return exc.exit_code
    except ParameterError as exc:
        report(str(exc), None)
        return EXIT_USAGE
    except ProtocolError as exc:  # --local: the request checks the daemon would apply
        report(exc.message, cli_hint(exc.code))
        return EXIT_USAGE if exc.code in ("bad_parameter", "bad_request") else EXIT_FAILURE
    except NSTError as exc:
        report(str(exc), cli_hint(exc.code))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        report("out of memory", cli_hint("out_of_memory"))
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a trace
        from nst_client.errors import DaemonError

        if isinstance(exc, DaemonError):
            report(exc.message, cli_hint(exc.code))
            return EXIT_USAGE if exc.code in ("bad_parameter", "bad_request") else EXIT_FAILURE
        if isinstance(exc, OSError):
            report(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), None)
            return EXIT_FAILURE
        if os.environ.get("NST_DEBUG"):
            traceback.print_exc()
        report(
            f"internal error: {type(exc).__name__}: {exc}",
            "please report it; set NST_DEBUG=1 to see the traceback",
        )
        return EXIT_FAILURE
