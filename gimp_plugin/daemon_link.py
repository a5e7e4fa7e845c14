"""The plug-in's side of the daemon: config, client, style list, plain-word errors.

No GIMP imports here, so this module also runs (and is tested) outside GIMP.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN_DIR = Path(__file__).resolve().parent
VENDOR_DIR = PLUGIN_DIR / "vendor"
CONFIG_FILE = PLUGIN_DIR / "config.json"
STYLE_CACHE = PLUGIN_DIR / "styles-cache.json"
PLUGIN_FILE = PLUGIN_DIR / "neural_style.py"
HELP_DIR = PLUGIN_DIR / "help"
LOG_ENV = "NST_PLUGIN_LOG"  # a file the plug-in appends what it shows to (JSON lines)
#: seconds for a ``hello`` from a daemon that may not be running: a running one answers
#: at once, even while it is busy
PROBE_TIMEOUT = 0.5
#: seconds for the style list of a running daemon (a fresh one renders the thumbnails first)
STYLES_TIMEOUT = 15.0

if VENDOR_DIR.is_dir() and str(VENDOR_DIR) not in sys.path:
    sys.path.insert(0, str(VENDOR_DIR))

from nst_daemon.client import Client, DaemonError, DaemonUnavailable  # noqa: E402
from nst_daemon.protocol import Image, ProtocolError  # noqa: E402

__all__ = ["Client", "DaemonError", "DaemonUnavailable", "connect", "known_styles",
           "describe_error", "progress_text", "status_text", "load_config", "Style",
           "ONLINE", "SLOW", "DOWN", "log_event", "short_name"]

ONLINE, SLOW, DOWN = "online", "slow", "down"  # what the daemon did when asked for styles

MESSAGES = {
    "daemon_unavailable": "The Neural Style daemon is not running and could not be started: "
                          "see Filters > Neural Style > Daemon Status.",
    "daemon_stopped": "The Neural Style daemon stopped during the job, so the job is lost: "
                      "try again (the daemon is started anew), or see Filters > Neural "
                      "Style > Daemon Status.",
    "shutting_down": "The Neural Style daemon was shutting down and ended the job: try "
                     "again in a moment.",
    "unknown_style": "The daemon does not know this style. Pick another one, or import the "
                     "model with 'nst styles import FILE'.",
    "too_large": "The image is too large for the daemon. Lower 'Output size limit', or "
                 "select a smaller area.",
    "out_of_memory": "The daemon ran out of memory. Lower 'Output size limit' or select a "
                     "smaller area.",
    "weights_missing": "Paint Like cannot run: the daemon has no VGG network weights; "
                       "reinstall Neural Style to restore the bundled ones.",
    "busy": "The daemon's queue is full. Wait for the running jobs to finish.",
    "timeout": "The daemon stopped answering.",
    "cancelled": "The job was cancelled.",
    "unsupported_version": "The plug-in and the daemon are from different versions. "
                           "Re-run install.sh.",
}


#: the advice says it all: no detail after it
SELF_EXPLAINED = {"weights_missing", "shutting_down"}


def load_config() -> dict[str, Any]:
    """``config.json`` written by the installer; ``$NST_ENDPOINT`` overrides the endpoint."""
    try:
        config = json.loads(CONFIG_FILE.read_text())
    except (OSError, ValueError):
        config = {}
    if os.environ.get("NST_ENDPOINT"):
        config["endpoint"] = os.environ["NST_ENDPOINT"]
    return config


def connect(autostart: bool = True, timeout: float = 60.0,
            on_status: Callable[[str], None] | None = None) -> Client:
    """A client for the configured daemon; starts the daemon when none answers.

    ``on_status`` hears when the daemon is being started.
    """
    config = load_config()
    start: bool | Sequence[str] = False
    if autostart:
        start = config.get("daemon_command") or True
    return Client(config.get("endpoint"), autostart=start, timeout=timeout, on_status=on_status)


@dataclass
class Style:
    """One fast style as the dialogs show it."""

    name: str
    title: str
    artist: str = ""
    year: str = ""
    source: str = ""
    preview: Image | None = None  # 96 x 96 RGB thumbnail, when the daemon sent one

    @classmethod
    def from_reply(cls, entry: dict[str, Any]) -> Style:
        preview = None
        if entry.get("preview") is not None:
            with contextlib.suppress(ProtocolError, TypeError, ValueError):
                preview = Image.from_wire(entry["preview"])
        return cls(str(entry["name"]), str(entry.get("title") or entry["name"]),
                   str(entry.get("artist") or ""), str(entry.get("year") or ""),
                   str(entry.get("source") or ""), preview)

    @classmethod
    def from_cache(cls, entry: Any) -> Style:
        if isinstance(entry, dict):
            return cls(str(entry["name"]), str(entry.get("title") or entry["name"]),
                       str(entry.get("artist") or ""), str(entry.get("year") or ""),
                       str(entry.get("source") or ""))
        name, title = entry[:2]  # the installer's [name, title] pairs
        return cls(str(name), str(title or name))

    def cache_entry(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "artist": self.artist,
                "year": self.year, "source": self.source}

    @property
    def byline(self) -> str:
        """"Vincent van Gogh, 1889" (or what is known of it)."""
        return ", ".join(part for part in (self.artist, self.year) if part)


def read_style_cache() -> list[Style]:
    try:
        return [Style.from_cache(entry) for entry in json.loads(STYLE_CACHE.read_text())]
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return []


def known_styles() -> tuple[list[Style], str]:
    """The daemon's styles, and what the daemon did: ``ONLINE``, ``SLOW`` or ``DOWN``.

    Never starts the daemon. A ``hello`` tells in a moment whether one runs (``DOWN``
    when none answers within ``PROBE_TIMEOUT``); a running daemon then gets
    ``STYLES_TIMEOUT`` for the list, since a fresh one renders the thumbnails first
    (``SLOW`` when even that is not enough). Without a list, the one last seen is used.

    GIMP registers a plug-in's procedures (and so the style choices that batch calls are
    checked against) again only when the plug-in file changes: when the daemon's list
    differs from the one last seen, the plug-in file is touched so that the next GIMP
    start registers the new list.
    """
    cached = read_style_cache()
    try:
        with connect(autostart=False, timeout=STYLES_TIMEOUT) as client:
            try:
                client.info = client.request("hello", timeout=PROBE_TIMEOUT)
            except DaemonError as exc:
                if exc.code == "timeout":
                    return cached, DOWN
                raise
            try:
                styles = [Style.from_reply(entry) for entry in client.styles()]
            except DaemonError as exc:
                if exc.code == "timeout":
                    return cached, SLOW
                raise
    except DaemonError:
        return cached, DOWN
    if [s.cache_entry() for s in styles] != [s.cache_entry() for s in cached]:
        with contextlib.suppress(OSError):  # a read-only plug-in folder only loses the cache
            STYLE_CACHE.write_text(json.dumps([s.cache_entry() for s in styles]))
            if [s.name for s in styles] != [s.name for s in cached]:
                os.utime(PLUGIN_FILE)
    return styles, ONLINE


def short_name(text: str, limit: int = 32) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), for the Layers panel."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def log_event(kind: str, **fields: Any) -> None:
    """Append ``{"event": kind, ...}`` to the file named by ``$NST_PLUGIN_LOG``, if any.

    A trace of what the dialogs showed (previews drawn, the daemon's state), for
    troubleshooting and for the end-to-end tests.
    """
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    fields = {"event": kind, "time": time.monotonic(), **fields}
    with contextlib.suppress(OSError), open(path, "a") as out:
        out.write(json.dumps(fields, default=str) + "\n")


def describe_error(error: Exception) -> str:
    """A message in plain words for a failed request."""
    if isinstance(error, DaemonUnavailable):
        # the client says "closed during the job" when the daemon died under a job
        stopped = "during the job" in (error.message or "")
        return MESSAGES["daemon_stopped" if stopped else "daemon_unavailable"]
    if isinstance(error, DaemonError):
        advice = MESSAGES.get(error.code)
        if advice and error.code in SELF_EXPLAINED:
            return advice
        detail = error.message or error.code
        return f"{advice}\n({detail})" if advice else f"Neural Style failed: {detail}"
    return f"Neural Style failed: {error}"


#: what the engine's stage names say to a user (others are shown as they come)
STAGES = {"loading": "Loading the style", "stylize": "Stylising", "tiles": "Stylising"}


def progress_text(event: dict[str, Any]) -> str:
    """Status line for a progress event: stage, step (or tile) and time left."""
    stage = str(event.get("stage") or "working")
    text = STAGES.get(stage, stage.replace("_", " ").capitalize())
    total = event.get("total") or 0
    if stage in ("stylize", "tiles"):
        if total > 1:
            text += f", tile {min(event.get('step', 0) + 1, total)} of {total}"
    elif total:
        text += f", step {event.get('step', 0)} of {total}"
    eta = event.get("eta_s")
    if eta is not None and eta >= 1:
        minutes, seconds = divmod(round(eta), 60)
        left = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
        text += f", about {left} left"
    return text


def _job_line(job: dict[str, Any]) -> str:
    line = f"  {job.get('method', 'job')} {job.get('state', '')}".rstrip()
    if job.get("total"):
        line += f", step {job.get('step', 0)}/{job['total']}"
    return line


def status_text(status: dict[str, Any] | None) -> str:
    """The daemon's status reply as a few readable lines (None: not running)."""
    if status is None:
        return "The daemon is not running. Press Start to start it."
    models = status.get("models") or {}
    fast = ", ".join(str(m) for m in models.get("fast") or []) or "none"
    lines = [
        f"Device: {status.get('device', 'unknown')}",
        f"Running jobs: {len(status.get('running') or [])}",
        *(_job_line(job) for job in status.get("running") or []),
        f"Waiting jobs: {len(status.get('queue') or [])}",
        f"VGG network loaded: {'yes' if models.get('vgg') else 'no'}",
        f"Fast styles loaded: {fast}",
    ]
    if status.get("uptime_s") is not None:
        minutes = round(status["uptime_s"] / 60)
        lines.append(f"Running for {minutes} min (process {status.get('pid', '?')})")
    return "\n".join(lines)
