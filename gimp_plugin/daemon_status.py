"""The Daemon Status procedure's work: show, start or stop the daemon, and the dialog that
does it interactively (GIMP's UI modules are imported only when it opens)."""

from __future__ import annotations

import daemon_link
from daemon_link import DaemonError


def daemon_action(action: str) -> daemon_link.Status | None:
    """Run ``action`` (show/start/stop); the daemon's status afterwards, None when down."""
    if action == "stop":
        try:
            with daemon_link.connect(autostart=False, timeout=5.0) as client:
                client.shutdown()
        except DaemonError:
            pass
        return None
    try:
        with daemon_link.connect(autostart=action == "start") as client:
            return client.status()
    except DaemonError:
        if action == "start":
            raise
        return None


def status_dialog(role: str) -> None:
    """The status dialog; ``role``: the procedure's name."""
    from gi.repository import GimpUi, Gtk

    GimpUi.init(role)
    dialog = GimpUi.Dialog(title="Neural Style daemon", role=role)
    for label, response in (("_Refresh", 1), ("_Start", 2), ("S_top", 3), ("_Close", 0)):
        dialog.add_button(label, response)
    label = Gtk.Label(xalign=0.0, selectable=True, margin=12)
    dialog.get_content_area().add(label)
    action = "show"
    while True:
        try:
            status = daemon_action(action)
            text = daemon_link.status_text(status)
        except DaemonError as exc:
            text = daemon_link.describe_error(exc)
        label.set_text(text)
        label.show()
        response = dialog.run()
        if response not in (1, 2, 3):
            break
        action = {1: "show", 2: "start", 3: "stop"}[response]
    dialog.destroy()
