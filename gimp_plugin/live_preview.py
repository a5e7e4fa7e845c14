"""The dialogs' live previews: Fast Style's zoom preview of the stylised layer and Paint
Like's low-resolution draft.

Previews are computed by the daemon in a worker thread (its own client), so the dialog
stays responsive; nothing is written to the image before OK.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
import daemon_link  # noqa: E402
from daemon_link import DaemonError, FastParams  # noqa: E402
from dialog_widgets import note_label  # noqa: E402
from gi.repository import Gimp, GimpUi, GLib, Gtk  # noqa: E402

from nst_client.protocol import Image, Progress, Result  # noqa: E402

#: a change of the options waits this long for the next one before a preview is asked for
DEBOUNCE_MS = 120
PREVIEW_SIDE = 280  # pixels: Fast Style's preview
DRAFT_SIDE = 160  # pixels: the long side of Paint Like's draft preview


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# the worker


class Worker:
    """Runs the latest requested job in a thread with its own daemon client.

    ``request(job)`` replaces any job not started yet; a running job is abandoned (its
    generator closed, which cancels it in the daemon) when a newer one arrives. ``job``
    is called in the thread with a ``Client`` and a ``superseded()`` check; what it
    returns (or the exception it raises) goes to ``on_done(serial, result, error)`` in
    GTK's main loop. ``on_status`` hears "starting the daemon" in the main loop.
    """

    def __init__(
        self,
        on_done: Callable[[int, Any, Exception | None], object],
        on_status: Callable[[str], None],
    ):
        self.on_done = on_done
        self.on_status = on_status
        self.cond = threading.Condition()
        self.pending: tuple[int, Callable] | None = None
        self.serial = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.run, name="nst-preview", daemon=True)
        self.thread.start()

    def request(self, job: Callable) -> int:
        with self.cond:
            self.serial += 1
            self.pending = (self.serial, job)
            self.cond.notify()
            return self.serial

    def superseded(self, serial: int) -> bool:
        return self.stopped or self.serial != serial

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.pending = None
            self.cond.notify()
        self.thread.join(timeout=3.0)

    def run(self) -> None:
        client = None

        def status(text: str) -> None:
            GLib.idle_add(self.on_status, text)

        try:
            while True:
                with self.cond:
                    while self.pending is None and not self.stopped:
                        self.cond.wait()
                    if self.stopped or self.pending is None:
                        return
                    serial, job = self.pending
                    self.pending = None
                try:
                    if client is None:
                        client = daemon_link.connect(timeout=60.0, on_status=status)
                    result, error = job(client, lambda s=serial: self.superseded(s)), None
                except Exception as exc:  # shown under the preview, never raised in GTK
                    result, error = None, exc
                    if isinstance(exc, DaemonError) and client is not None:
                        client.close()
                        client = None
                if not self.superseded(serial) or error is not None:
                    GLib.idle_add(self.on_done, serial, result, error)
        finally:
            if client is not None:
                client.close()


def run_job(
    client,
    superseded: Callable[[], bool],
    image: Image,
    on_progress: Callable[[Progress], None] | None = None,
    **kwargs,
) -> Image | None:
    """One daemon job; None when a newer request made it moot (the job is cancelled).
    ``on_progress`` sees each progress event (on the worker thread)."""
    events = client.submit(image, **kwargs)
    try:
        for event in events:
            if superseded():
                return None
            if isinstance(event, Progress) and on_progress is not None:
                on_progress(event)
            elif isinstance(event, Result):
                return event.image
    finally:
        events.close()
    return None


# ------------------------------------------------------------------------------------------
# Fast Style


class FastPreview:
    """GIMP's zoom preview of the layer (or selection), stylised by the daemon."""

    def __init__(self, config, drawable: Gimp.Drawable):
        self.config = config
        self.drawable = drawable
        self.preview = GimpUi.ZoomPreview.new_from_drawable(drawable)
        self.preview.set_size_request(PREVIEW_SIDE, PREVIEW_SIDE)
        self.status = note_label()
        self.status.set_max_width_chars(40)
        self.worker = Worker(self.done, self.status.set_text)
        self.asked: dict[int, tuple[dict, float]] = {}
        self.timer = 0
        self.drawn = 0
        self.preview.connect("invalidated", self.invalidated)
        for name in ("style", "strength", "preserve-colors"):
            config.connect(f"notify::{name}", lambda *_: self.preview.invalidate())

    def source(self) -> Image:
        """What the zoom preview shows of the drawable, at the preview's size.

        (``ZoomPreview.get_source`` crashes from Python in GIMP 3.0: the same pixels are
        read from the visible area and the drawable's thumbnail call.)
        """
        width, height = self.preview.get_size()
        x1, y1 = self.preview.untransform(0, 0)
        x2, y2 = self.preview.untransform(width, height)
        x1, y1 = max(0, x1), max(0, y1)
        x2 = min(self.drawable.get_width(), x2)
        y2 = min(self.drawable.get_height(), y2)
        data, w, h, bpp = self.drawable.get_sub_thumbnail_data(
            x1, y1, x2 - x1, y2 - y1, width, height
        )
        return Image(w, h, bpp, bytes(data.get_data()), "u8")

    def invalidated(self, _preview=None) -> None:
        if not self.preview.get_update():
            return
        if self.timer:
            GLib.source_remove(self.timer)
        self.timer = GLib.timeout_add(DEBOUNCE_MS, self.ask)

    def options(self) -> dict:
        config = self.config
        return {
            "style": config.get_property("style"),
            "strength": round(config.get_property("strength"), 4),
            "preserve_colors": config.get_property("preserve-colors"),
        }

    def ask(self) -> bool:
        self.timer = 0
        options = self.options()
        if options["style"] == "none":
            return False
        source = self.source()
        # the lite network where the style has one, whatever the dialog's Speed: a
        # preview must come quickly (OK runs the chosen network)
        colors = options["preserve_colors"]
        params = FastParams(
            strength=options["strength"],
            speed="fast",
            preserve_colors=None if colors == "none" else colors,
        )

        def job(client, superseded):
            return run_job(
                client, superseded, source, style=options["style"], method="fast", params=params
            )

        asked = time.monotonic()
        serial = self.worker.request(job)
        self.asked[serial] = ({**options, "width": source.width, "height": source.height}, asked)
        if self.drawn == 0:
            self.status.set_text("Computing the preview…")
        return False

    def done(self, serial: int, result: Image | None, error: Exception | None) -> bool:
        options, asked = self.asked.pop(serial, ({}, time.monotonic()))
        if error is not None:
            self.status.set_text("No preview: " + daemon_link.describe_error(error))
            daemon_link.log_event("preview-error", error=str(error), **options)
            return False
        if result is None or serial != self.worker.serial or not self.preview.get_update():
            return False
        self.preview.draw_buffer(bytes(result.data), result.width * result.channels)
        self.drawn += 1
        latency = time.monotonic() - asked
        self.status.set_text(f"Preview at {result.width} × {result.height} px")
        daemon_link.log_event(
            "preview",
            serial=serial,
            digest=digest(bytes(result.data)),
            latency_s=round(latency, 3),
            **options,
        )
        return False

    def close(self) -> None:
        if self.timer:
            GLib.source_remove(self.timer)
        self.worker.stop()


# ------------------------------------------------------------------------------------------
# Paint Like


class DraftPreview:
    """Paint Like's quick draft: a low-resolution Gatys run, shown before the full run."""

    def __init__(self, config, drawable: Gimp.Drawable, request: Callable[[], dict]):
        self.config = config
        self.drawable = drawable
        self.request = request
        self.area = GimpUi.PreviewArea()
        self.area.set_size_request(DRAFT_SIDE, DRAFT_SIDE)
        # exactly the size asked for; a new size drops what was drawn (GimpPreviewArea
        # frees its buffer), so the draft is drawn once the area has the draft's size
        self.area.set_halign(Gtk.Align.CENTER)
        self.area.set_valign(Gtk.Align.CENTER)
        self.area.connect_after("size-allocate", lambda *_: self.paint())
        self.picture: Image | None = None
        self.label = Gtk.Label(
            label="<b>Draft preview</b> (low resolution)", use_markup=True, xalign=0.0
        )
        self.status = note_label(
            "Press 'Draft preview' to see roughly what the full run will give, in a few seconds."
        )
        self.button = Gtk.Button.new_with_mnemonic("_Draft preview")
        self.button.connect("clicked", self.start)
        self.worker = Worker(self.done, self.status.set_text)
        self.serial = 0

    def start(self, _button=None) -> None:
        try:
            kwargs = self.request()
        except Exception as exc:  # no painting chosen yet, unreadable file
            self.status.set_text(str(exc))
            return
        side = min(DRAFT_SIDE, max(self.drawable.get_width(), self.drawable.get_height()))
        data, width, height, bpp = self.drawable.get_thumbnail_data(side, side)
        source = Image(width, height, bpp, bytes(data.get_data()), "u8")
        params = dataclasses.replace(
            kwargs["params"], quality="draft", max_size=side, iterations=None, preview_every=0
        )
        kwargs = {**kwargs, "params": params}
        status = self.status

        def show(event: Progress) -> None:
            GLib.idle_add(status.set_text, "Draft: " + daemon_link.progress_text(event))

        def job(client, superseded):
            return run_job(client, superseded, source, show, **kwargs)

        self.serial = self.worker.request(job)
        self.status.set_text("Draft: starting…")
        daemon_link.log_event(
            "draft-asked",
            serial=self.serial,
            width=width,
            height=height,
            quality=params.quality,
            max_size=side,
        )

    def done(self, serial: int, result: Image | None, error: Exception | None) -> bool:
        if error is not None:
            message = (
                str(error)
                if not isinstance(error, DaemonError)
                else daemon_link.describe_error(error)
            )
            self.status.set_text("No draft: " + message)
            daemon_link.log_event("draft-error", error=str(error))
            return False
        if result is None or serial != self.serial:
            return False
        self.picture = result
        self.status.set_text(
            f"Draft at {result.width} × {result.height} px, quick settings: "
            "the full run is finer and follows the painting more closely."
        )
        daemon_link.log_event(
            "draft",
            digest=digest(bytes(result.data)),
            width=result.width,
            height=result.height,
            label=self.label.get_text(),
            note=self.status.get_text(),
        )
        self.area.set_size_request(result.width, result.height)
        self.paint()  # now if the area has the draft's size, else once it gets it
        return False

    def paint(self) -> None:
        result = self.picture
        size = (self.area.get_allocated_width(), self.area.get_allocated_height())
        if result is None or size != (result.width, result.height):
            return
        kinds = {
            1: Gimp.ImageType.GRAY_IMAGE,
            2: Gimp.ImageType.GRAYA_IMAGE,
            3: Gimp.ImageType.RGB_IMAGE,
            4: Gimp.ImageType.RGBA_IMAGE,
        }
        self.area.draw(
            0,
            0,
            result.width,
            result.height,
            kinds[result.channels],
            bytes(result.data),
            result.width * result.channels,
        )
        at = self.area.translate_coordinates(self.area.get_toplevel(), 0, 0) or (None, None)
        daemon_link.log_event(
            "draft-drawn",
            digest=digest(bytes(result.data)),
            x=at[-2],
            y=at[-1],
            width=result.width,
            height=result.height,
        )

    def close(self) -> None:
        self.worker.stop()
