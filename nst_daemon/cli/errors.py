"""Exit codes and the one-line error report (the advice for each error code is
``nst_client.text.cli_hint``)."""

from __future__ import annotations

import sys

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # `nst daemon status` when no daemon answers (as LSB init scripts do)
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user error the CLI reports as one line and an exit code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def say(message: str) -> None:
    print(f"nst: {message}", file=sys.stderr, flush=True)


def report(message: str, hint: str | None) -> None:
    message = " ".join(str(message).split()) or "failed"
    if hint and "`nst " not in message:  # a message naming a command says what to do already
        message = f"{message.rstrip('.')} ({hint})"
    print(f"nst: error: {message}", file=sys.stderr, flush=True)
