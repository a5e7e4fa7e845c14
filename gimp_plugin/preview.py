"""A small window showing a Gatys run's intermediate pictures (interactive runs only).

GIMP 3 gives a plug-in no preview surface outside its dialogs, and drawing into the image
before the job ends would leave half-done work behind on cancel; so the previews go to a
window of their own, closed when the job ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, GLib, Gtk  # noqa: E402

if TYPE_CHECKING:
    from nst_client.protocol import Image

TITLE = "Paint Like preview"
#: Steps between two previews of a Gatys run (the daemon sends a downscaled picture).
PREVIEW_EVERY = 10


class PreviewWindow:
    """Created on the first preview; ``show`` replaces the picture, ``close`` ends it."""

    def __init__(self, painting: str) -> None:
        self.window = Gtk.Window(title=f"{TITLE} — {painting}")
        self.window.set_keep_above(True)
        self.picture = Gtk.Image()
        self.window.add(self.picture)
        self.window.show_all()

    def show(self, image: Image) -> None:
        """Display a protocol ``Image`` (RGB, 8 bits) and let GTK draw it now."""
        width, height = image.width, image.height
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(
            GLib.Bytes.new(image.data),
            GdkPixbuf.Colorspace.RGB,
            False,
            8,
            width,
            height,
            width * 3,
        )
        self.picture.set_from_pixbuf(pixbuf)
        self.window.resize(width, height)
        while Gtk.events_pending():
            Gtk.main_iteration()

    def close(self) -> None:
        self.window.destroy()
        while Gtk.events_pending():
            Gtk.main_iteration()
