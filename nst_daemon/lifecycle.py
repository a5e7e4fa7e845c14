"""Daemon lifecycle: pidfile + lock per endpoint, background start, stop, log files.

The pidfile is also the lock: the running daemon holds an exclusive ``flock`` on it for
its whole life, so two daemons never serve one endpoint, and a pidfile left by a killed
daemon (nobody holds its lock) is recognised as stale and replaced. Files live in
``nst_core.paths.data_dir()``: ``daemon.pid``/``daemon.log`` for the default endpoint,
``daemon-<endpoint>.pid``/``.log`` for others; ``.ready`` holds the pid once the endpoint
is bound. Torch-free.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from nst_client.client import START_TIMEOUT_S, Client
from nst_client.errors import DaemonError
from nst_client.protocol import DEFAULT_ENDPOINT, Hello, ShutdownRequest
from nst_core.paths import data_dir

if sys.platform == "win32":  # pragma: no cover - no flock; the bind itself refuses a 2nd daemon
    fcntl = None
else:
    import fcntl

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


class DaemonRunning(RuntimeError):
    def __init__(self, endpoint: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"a daemon ({who}) is already serving {endpoint}; stop it with `nst daemon stop`"
        )
        self.pid = pid


class DaemonStartError(RuntimeError):
    pass


def state_file(endpoint: str, suffix: str) -> Path:
    """``data_dir()/daemon.<suffix>``, with the endpoint in the name unless it is the default."""
    if endpoint == DEFAULT_ENDPOINT:
        name = f"daemon.{suffix}"
    else:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", endpoint.split("://", 1)[-1]).strip("-")[:80]
        name = f"daemon-{slug}.{suffix}"
    return data_dir() / name


def _read_pid(file: IO[str]) -> int | None:
    file.seek(0)
    text = file.read().strip()
    return int(text) if text.isdigit() else None


class PidLock:
    """The daemon's pidfile, held locked while it runs."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.path = state_file(endpoint, "pid")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # noqa: SIM115 - kept open (and locked) until release
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(file)
                file.close()
                raise DaemonRunning(self.endpoint, pid) from None
        file.seek(0)
        file.truncate()  # a stale pid from a daemon that died is replaced here
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def mark_ready(self) -> None:
        """Record that the endpoint is bound, so ``start`` knows without an answer (a CURVE
        daemon does not answer a client without keys)."""
        state_file(self.endpoint, "ready").write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        if self._file is not None:
            state_file(self.endpoint, "ready").unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


def running_pid(endpoint: str) -> int | None:
    """The pid of the daemon holding ``endpoint``'s lock, ``None`` if none (or stale)."""
    path = state_file(endpoint, "pid")
    try:
        file = open(path)  # noqa: SIM115
    except OSError:
        return None
    with file:
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return _read_pid(file)  # locked: a live daemon
            return None  # nobody holds it: stale
        return _read_pid(file)


def is_bound(endpoint: str, pid: int) -> bool:
    """Whether daemon ``pid`` holds ``endpoint``'s lock and has bound the endpoint."""
    try:
        ready = state_file(endpoint, "ready").read_text().strip()
    except OSError:
        return False
    return ready == str(pid) and running_pid(endpoint) == pid


def setup_logging(endpoint: str, level: int = logging.INFO, stderr: bool = False) -> Path:
    """Log to a rotating file in the data dir (and to stderr when asked)."""
    path = state_file(endpoint, "log")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [handler]
    if stderr:
        handlers.append(logging.StreamHandler())
    root = logging.getLogger()
    root.setLevel(level)
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    return path


def probe(endpoint: str, timeout: float = 1.0) -> Hello | None:
    """The daemon's ``hello`` reply, or ``None`` when nothing answers in time."""
    with Client(endpoint, autostart=False, timeout=timeout) as client:
        try:
            return client.probe(timeout)
        except DaemonError as exc:
            if exc.code == "timeout":
                return None
            raise


def _spawn(endpoint: str, server_args: Sequence[str], errors_path: Path) -> subprocess.Popen:
    errors_path.parent.mkdir(parents=True, exist_ok=True)
    with open(errors_path, "wb") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "nst_daemon.server", "--endpoint", endpoint, *server_args],
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
            start_new_session=True,
        )


def _serving_pid(endpoint: str) -> int | None:
    """The pid of the daemon that serves ``endpoint`` now (bound or answering), if any."""
    pid = running_pid(endpoint)
    if pid is not None and is_bound(endpoint, pid):
        return pid
    info = probe(endpoint, timeout=0.5)
    if info is None:
        return None
    return int(info.pid or pid or 0) or None


def _end(proc: subprocess.Popen) -> None:
    """End a daemon process that is not serving (still starting, or about to exit)."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(endpoint: str, server_args: Sequence[str] = (), timeout: float = START_TIMEOUT_S) -> int:
    """Start a daemon in the background and wait until it answers; returns the pid of
    the daemon that serves the endpoint.

    When a daemon already holds the endpoint, waits for it to answer instead; when
    another start wins the race, ends the daemon process it started (which would
    otherwise take the endpoint over once the winner stops) and returns the winner's pid.
    ``server_args`` are extra options of ``python -m nst_daemon.server``.
    """
    proc = None
    errors_path = state_file(endpoint, "start.err")
    if running_pid(endpoint) is None:
        proc = _spawn(endpoint, server_args, errors_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _serving_pid(endpoint)
        if pid is not None:
            if proc is not None and proc.pid != pid:
                _end(proc)  # ours lost the race: it must not take over once the winner stops
            return pid
        if proc is not None and proc.poll() is not None and running_pid(endpoint) is None:
            text = errors_path.read_text(errors="replace").strip()
            lines = [line for line in text.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            raise DaemonStartError(f"the daemon exited at start: {reason}")
    who = f"pid {running_pid(endpoint) or (proc.pid if proc else '?')}"
    raise DaemonStartError(
        f"the daemon ({who}) did not answer at {endpoint} within {timeout:g} s; "
        f"see {state_file(endpoint, 'log')}"
    )


def stop(endpoint: str, timeout: float = 10.0) -> bool:
    """Stop the daemon at ``endpoint`` (shutdown request, else SIGTERM); False if none ran."""
    pid = running_pid(endpoint)
    answered = False
    with Client(endpoint, autostart=False, timeout=2.0) as client:
        try:
            client.request(ShutdownRequest(), timeout=2.0)
            answered = True
        except DaemonError:
            pass
    if pid is None:
        return answered
    if not answered:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(endpoint) is None:
            return True
        time.sleep(0.1)
    raise DaemonStartError(f"the daemon (pid {pid}) did not stop within {timeout:g} s")
