"""Exit codes, the advice appended to each error code, and the one-line error report."""

from __future__ import annotations

import sys

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # `nst daemon status` when no daemon answers (as LSB init scripts do)
EXIT_INTERRUPTED = 130

# What to do about each stable error code; appended to the message on stderr.
HINTS = {
    "unknown_style": "list styles with `nst styles`, or add a model with `nst styles import FILE`",
    "weights_missing": "run `nst weights fetch`, or `nst weights import FILE` for a file you have",
    "bad_model": "use a .pth from PyTorch's fast_neural_style example or an nst .safetensors model",
    "out_of_memory": "try a smaller --max-size",
    "too_large": "try a smaller --max-size",
    "daemon_unavailable": "start it with `nst daemon start` (see its log), check --endpoint "
    "or NST_ENDPOINT, or run in-process with --local",
    "timeout": "check the daemon with `nst daemon status`; its log is in the data dir",
    "busy": "the daemon's queue is full; try again when `nst status` shows fewer jobs",
    "internal": "see the daemon's log (`nst daemon status` shows where)",
    "unsupported_version": "the daemon is another version of nst; restart it: "
    "`nst daemon stop && nst daemon start`",
}


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

