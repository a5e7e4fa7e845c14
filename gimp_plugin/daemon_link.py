"""The plug-in's side of the daemon: config, client, style list, plain-word errors.

No GIMP imports here, so this module also runs (and is tested) outside GIMP.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLUGIN_DIR = Path(__file__).resolve().parent
VENDOR_DIR = PLUGIN_DIR / "vendor"
CONFIG_FILE = PLUGIN_DIR / "config.json"
STYLE_CACHE = PLUGIN_DIR / "styles-cache.json"
PLUGIN_FILE = PLUGIN_DIR / "neural_style.py"
QUICK_TIMEOUT = 0.5  # seconds to wait for a daemon that may not be running

if VENDOR_DIR.is_dir() and str(VENDOR_DIR) not in sys.path:
    sys.path.insert(0, str(VENDOR_DIR))

from nst_daemon.client import Client, DaemonError, DaemonUnavailable  # noqa: E402

__all__ = ["Client", "DaemonError", "DaemonUnavailable", "connect", "known_styles",
           "describe_error", "progress_text", "status_text", "load_config"]

MESSAGES = {
    "daemon_unavailable": "The Neural Style daemon is not running and could not be started. "
                          "Start it with 'nst daemon start' and try again.",
    "unknown_style": "The daemon does not know this style. Pick another one, or import the "
                     "model with 'nst styles import FILE'.",
    "too_large": "The image is too large for the daemon. Lower 'Output size limit', or "
                 "select a smaller area.",
    "out_of_memory": "The daemon ran out of memory. Lower 'Output size limit' or select a "
                     "smaller area.",
    "weights_missing": "The VGG weights that 'Paint Like' needs are missing. Fetch them with "
                       "'nst weights fetch' (or import a file with 'nst weights import FILE').",
    "busy": "The daemon's queue is full. Wait for the running jobs to finish.",
    "timeout": "The daemon stopped answering.",
    "cancelled": "The job was cancelled.",
    "unsupported_version": "The plug-in and the daemon are from different versions. "
                           "Re-run install.sh.",
}


def load_config() -> dict[str, Any]:
    """``config.json`` written by the installer; ``$NST_ENDPOINT`` overrides the endpoint."""
    try:
        config = json.loads(CONFIG_FILE.read_text())
    except (OSError, ValueError):
        config = {}
    if os.environ.get("NST_ENDPOINT"):
        config["endpoint"] = os.environ["NST_ENDPOINT"]
    return config


def connect(autostart: bool = True, timeout: float = 60.0) -> Client:
    """A client for the configured daemon; starts the daemon when none answers."""
    config = load_config()
    start: bool | Sequence[str] = False
    if autostart:
        start = config.get("daemon_command") or True
    return Client(config.get("endpoint"), autostart=start, timeout=timeout)


def known_styles() -> tuple[list[tuple[str, str]], bool]:
    """(name, title) of the daemon's styles, and whether the daemon answered.

    Never starts the daemon and waits at most a moment: GIMP calls this when it registers
    the plug-in. When the daemon is down the list last seen is used.

    GIMP registers a plug-in's procedures (and so the style choices that batch calls are
    checked against) again only when the plug-in file changes: when the daemon's list
    differs from the one last seen, the plug-in file is touched so that the next GIMP
    start registers the new list.
    """
    try:
        cached = [tuple(s) for s in json.loads(STYLE_CACHE.read_text())]
    except (OSError, ValueError, TypeError):
        cached = []
    try:
        with connect(autostart=False, timeout=QUICK_TIMEOUT) as client:
            styles = [(s["name"], s.get("title") or s["name"]) for s in client.styles()]
    except DaemonError:
        return cached, False
    if styles != cached:
        with contextlib.suppress(OSError):  # a read-only plug-in folder only loses the cache
            STYLE_CACHE.write_text(json.dumps(styles))
            os.utime(PLUGIN_FILE)
    return styles, True


def describe_error(error: Exception) -> str:
    """A message in plain words for a failed request."""
    if isinstance(error, DaemonUnavailable):
        return MESSAGES["daemon_unavailable"]
    if isinstance(error, DaemonError):
        advice = MESSAGES.get(error.code)
        detail = error.message or error.code
        return f"{advice}\n({detail})" if advice else f"Neural Style failed: {detail}"
    return f"Neural Style failed: {error}"


def progress_text(event: dict[str, Any]) -> str:
    """Status line for a progress event: stage, step and time left."""
    stage = str(event.get("stage") or "working").replace("_", " ")
    text = stage.capitalize()
    if event.get("total"):
        text += f" {event.get('step', 0)}/{event['total']}"
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
