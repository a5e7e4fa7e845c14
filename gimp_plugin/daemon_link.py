"""The plug-in's side of the daemon: config, client, style list; the typed replies and
their plain words come from the vendored ``nst_client`` (``protocol``, ``text``).

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

from nst_client.client import Client  # noqa: E402
from nst_client.errors import DaemonError, DaemonUnavailable, ProtocolError  # noqa: E402
from nst_client.params import FastParams, GatysParams, TrainParams  # noqa: E402
from nst_client.protocol import (  # noqa: E402
    Accepted,
    Image,
    JobEvent,
    Progress,
    Result,
    Status,
    StyleEntry,
)
from nst_client.text import describe_error, progress_text, status_text  # noqa: E402

__all__ = [
    "Client",
    "DaemonError",
    "DaemonUnavailable",
    "ProtocolError",
    "FastParams",
    "GatysParams",
    "TrainParams",
    "connect",
    "known_styles",
    "describe_error",
    "progress_text",
    "status_text",
    "load_config",
    "Style",
    "ONLINE",
    "SLOW",
    "DOWN",
    "SPEED_CHOICES",
    "log_event",
    "short_name",
    "Accepted",
    "Image",
    "JobEvent",
    "Progress",
    "Result",
    "Status",
]

ONLINE, SLOW, DOWN = "online", "slow", "down"  # what the daemon did when asked for styles

#: Fast Style's Speed option, ``params.speed`` (``nst_client.params.SPEEDS``, which a test
#: compares): (nick, label, help). The live preview always asks for ``fast``.
SPEED_CHOICES = (
    ("auto", "Automatic", "The lite network when the daemon runs on a CPU, the full one on a GPU"),
    (
        "fast",
        "Fast (lite network)",
        "The style's lite network where it has one (quicker, a little less detail)",
    ),
    ("best", "Best (full network)", "Always the style's full network"),
)


def load_config() -> dict[str, Any]:
    """``config.json`` written by the installer; ``$NST_ENDPOINT`` overrides the endpoint."""
    try:
        config = json.loads(CONFIG_FILE.read_text())
    except (OSError, ValueError):
        config = {}
    if os.environ.get("NST_ENDPOINT"):
        config["endpoint"] = os.environ["NST_ENDPOINT"]
    return config


def connect(
    autostart: bool = True, timeout: float = 60.0, on_status: Callable[[str], None] | None = None
) -> Client:
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
    def from_reply(cls, entry: StyleEntry) -> Style:
        return cls(
            entry.name,
            entry.title or entry.name,
            entry.artist,
            entry.year,
            entry.source,
            entry.preview,
        )

    @classmethod
    def from_cache(cls, entry: Any) -> Style:
        if isinstance(entry, dict):
            return cls(
                str(entry["name"]),
                str(entry.get("title") or entry["name"]),
                str(entry.get("artist") or ""),
                str(entry.get("year") or ""),
                str(entry.get("source") or ""),
            )
        name, title = entry[:2]  # the installer's [name, title] pairs
        return cls(str(name), str(title or name))

    def cache_entry(self) -> dict[str, str]:
        return {
            "name": self.name,
            "title": self.title,
            "artist": self.artist,
            "year": self.year,
            "source": self.source,
        }

    @property
    def byline(self) -> str:
        """ "Vincent van Gogh, 1889" (or what is known of it)."""
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
                client.probe(PROBE_TIMEOUT)
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
