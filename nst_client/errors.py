"""The protocol's stable error codes and the exceptions that carry them.

``ProtocolError`` is a request one side refuses (the daemon answers it with an ``error``
reply); ``DaemonError`` is an ``error`` reply as a client sees it, or a client-side
failure (no daemon, no answer in time). Both carry a ``code``: one of ``ErrorCode``, or
a newer daemon's code that this side does not know yet (kept as it came).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every error code of protocol 1.x (``docs/protocol.md``); members compare equal to
    their wire strings (``ErrorCode.BUSY == "busy"``)."""

    # protocol and transport
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    BUSY = "busy"
    FORBIDDEN = "forbidden"
    UNKNOWN_JOB = "unknown_job"
    DAEMON_UNAVAILABLE = "daemon_unavailable"
    TIMEOUT = "timeout"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"
    # engine (nst_core.errors)
    WEIGHTS_MISSING = "weights_missing"
    UNKNOWN_STYLE = "unknown_style"
    BAD_MODEL = "bad_model"
    BAD_IMAGE = "bad_image"
    BAD_PARAMETER = "bad_parameter"
    OUT_OF_MEMORY = "out_of_memory"
    CANCELLED = "cancelled"

    @classmethod
    def known(cls, code: object) -> ErrorCode:
        """``code`` as a member; anything this side does not know is ``INTERNAL``."""
        try:
            return cls(code)
        except ValueError:
            return cls.INTERNAL


class ProtocolError(Exception):
    """A request that is refused; ``code`` is an ``ErrorCode``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode.known(code)
        self.message = message


class DaemonError(Exception):
    """An error reply from the daemon (or a client-side failure), with a stable ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


class DaemonUnavailable(DaemonError):
    """No daemon answers (and none could be started), or its connection closed under a
    job (``lost_job``: the daemon stopped during the job, which is lost)."""

    def __init__(self, message: str, lost_job: bool = False) -> None:
        super().__init__(ErrorCode.DAEMON_UNAVAILABLE, message)
        self.lost_job = lost_job
