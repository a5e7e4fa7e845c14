"""The Fast Style and Paint Like dialogs: GIMP's own ProcedureDialog with a live preview
(``GimpUi.ZoomPreview``), a grid of style thumbnails and notes that explain the options.

Previews are computed by the daemon in a worker thread (its own client), so the dialog
stays responsive; nothing is written to the image before OK.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
import daemon_link  # noqa: E402
from daemon_link import DOWN, SLOW, DaemonError, Style  # noqa: E402
from gi.repository import GdkPixbuf, Gimp, GimpUi, GLib, GObject, Gtk, Pango  # noqa: E402

from nst_client.protocol import Image, Progress, Result  # noqa: E402

#: a change of the options waits this long for the next one before a preview is asked for
DEBOUNCE_MS = 120
PREVIEW_SIDE = 280  # pixels: Fast Style's preview
THUMB = 72  # pixels: the style thumbnails in the grid
PAINTING_THUMB = 160  # pixels: the painting chosen for Paint Like
DRAFT_SIDE = 160  # pixels: the long side of Paint Like's draft preview
NOTE_WIDTH = 46  # characters before a note wraps


# ------------------------------------------------------------------------------------------
# pixels


def pixbuf_of(image: Image) -> GdkPixbuf.Pixbuf:
    """A pixbuf of an 8-bit protocol image (gray is shown as RGB)."""
    data, channels = bytes(image.data), image.channels
    if channels in (1, 2):
        gray = data[::channels]
        rgb = bytearray(len(gray) * 3)
        rgb[0::3] = rgb[1::3] = rgb[2::3] = gray
        data, channels = bytes(rgb), 3
    return GdkPixbuf.Pixbuf.new_from_bytes(
        GLib.Bytes.new(data), GdkPixbuf.Colorspace.RGB, channels == 4, 8,
        image.width, image.height, image.width * channels,
    )


def placeholder(size: int) -> GdkPixbuf.Pixbuf:
    pixbuf = GdkPixbuf.Pixbuf.new(GdkPixbuf.Colorspace.RGB, False, 8, size, size)
    pixbuf.fill(0x808080FF)
    return pixbuf


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

    def __init__(self, on_done: Callable[[int, Any, Exception | None], None],
                 on_status: Callable[[str], None]):
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
                    if self.stopped:
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


def run_job(client, superseded: Callable[[], bool], image: Image, **kwargs) -> Image | None:
    """One daemon job; None when a newer request made it moot (the job is cancelled)."""
    events = client.submit(image, **kwargs)
    try:
        for event in events:
            if superseded():
                return None
            if isinstance(event, Result):
                return event.image
    finally:
        events.close()
    return None


# ------------------------------------------------------------------------------------------
# widgets


def note_label(text: str = "") -> Gtk.Label:
    label = Gtk.Label(label=text, xalign=0.0, wrap=True, max_width_chars=NOTE_WIDTH)
    label.set_line_wrap_mode(Pango.WrapMode.WORD)
    label.get_style_context().add_class("dim-label")
    return label


def style_grid(styles: list[Style], current: str,
               on_select: Callable[[str], None]) -> tuple[Gtk.Widget, Gtk.IconView]:
    """A scrolled grid of style thumbnails with title and artist."""
    store = Gtk.ListStore(GdkPixbuf.Pixbuf, str, str, str)
    for style in styles:
        if style.preview is not None:
            pixbuf = pixbuf_of(style.preview).scale_simple(THUMB, THUMB,
                                                           GdkPixbuf.InterpType.BILINEAR)
        else:
            pixbuf = placeholder(THUMB)
        text = GLib.markup_escape_text(style.title)
        if style.byline:
            text += f"\n<small>{GLib.markup_escape_text(style.byline)}</small>"
        tooltip = style.title + (f" — {style.byline}" if style.byline else "")
        if style.source == "user":
            tooltip += " (your style)"
        store.append([pixbuf, text, style.name, tooltip])
    view = Gtk.IconView(model=store)
    view.set_pixbuf_column(0)
    view.set_markup_column(1)
    view.set_tooltip_column(3)
    view.set_item_width(THUMB + 24)
    view.set_columns(3)
    view.set_item_padding(2)
    view.set_margin(2)
    view.set_spacing(2)
    view.set_selection_mode(Gtk.SelectionMode.BROWSE)
    for index, style in enumerate(styles):
        if style.name == current:
            path = Gtk.TreePath.new_from_indices([index])
            view.select_path(path)
            view.set_cursor(path, None, False)
            GLib.idle_add(view.scroll_to_path, path, False, 0.0, 0.0)

    def changed(view: Gtk.IconView) -> None:
        selected = view.get_selected_items()
        if selected:
            on_select(store[selected[0]][2])

    view.connect("selection-changed", changed)
    scrolled = Gtk.ScrolledWindow(hscrollbar_policy=Gtk.PolicyType.NEVER,
                                  vscrollbar_policy=Gtk.PolicyType.AUTOMATIC)
    scrolled.set_shadow_type(Gtk.ShadowType.IN)
    scrolled.set_size_request(3 * (THUMB + 34) + 20, 2 * (THUMB + 52))
    scrolled.add(view)
    return scrolled, view


def size_note(drawable: Gimp.Drawable, image: Gimp.Image, max_size: int) -> str:
    """What the output size limit does to this picture, in plain words."""
    from layer_io import region_size

    width, height = region_size(image, drawable)
    side = max(width, height)
    if max_size <= 0:
        return f"Computes at full size ({width} × {height} px)."
    if side <= max_size:
        return f"Computes at full size ({width} × {height} px): within the limit."
    return (f"Computes at {max_size} px on the long side, result upscaled to {side} px "
            "(a little softer). Raise the limit for more detail, at the cost of time.")


def cover_note(drawable: Gimp.Drawable) -> str:
    from layer_io import covering_layers

    covering = covering_layers(drawable)
    if not covering:
        return ""
    names = ", ".join(f"'{layer.get_name()}'" for layer in covering[:2])
    more = " and others" if len(covering) > 2 else ""
    return (f"Visible layers above this one ({names}{more}) may hide the result: "
            "choose 'On top of all layers' to see it at once.")


def add_notes(dialog, config, image, drawable) -> list[str]:
    """Labels under the options: the size limit's effect and layers that would cover."""
    size = note_label(size_note(drawable, image, config.get_property("max-size")))
    config.connect("notify::max-size", lambda c, _p: size.set_text(
        size_note(drawable, image, c.get_property("max-size"))))
    cover = note_label()

    def placement_changed(c, _p=None) -> None:
        text = cover_note(drawable) if c.get_property("placement") == "above" else ""
        cover.set_text(text)
        cover.set_visible(bool(text))

    config.connect("notify::placement", placement_changed)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
    box.pack_start(size, False, False, 0)
    box.pack_start(cover, False, False, 0)
    box.show_all()
    placement_changed(config)
    return [box]


def daemon_note(state: str) -> str:
    if state == DOWN:
        return ("The Neural Style daemon is not running: it starts with the preview or "
                "when you press OK.")
    if state == SLOW:
        return ("The Neural Style daemon is slow to answer (busy or just started): the "
                "style list may be out of date.")
    return ""


def new_dialog(procedure, config, title: str, state: str):
    GimpUi.init(procedure.get_name())
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    note = daemon_note(state)
    daemon_link.log_event("dialog", procedure=procedure.get_name(), daemon=state, note=note)
    return dialog, note


def layout(dialog, left: list[Gtk.Widget], right_top: list[Gtk.Widget], fields: list[str],
           right_bottom: list[Gtk.Widget]) -> None:
    """Preview column on the left; styles, GIMP's option widgets and notes on the right."""
    dialog.fill(fields)
    content = dialog.get_content_area()
    position = None
    filled = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
    for field in fields:  # fill() packs them into the content area: move them to a column
        widget = dialog.get_widget(field, GObject.TYPE_NONE)
        if widget.get_parent() is content:
            if position is None:
                position = content.child_get_property(widget, "position")
            content.remove(widget)
        filled.pack_start(widget, False, False, 0)
    columns = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12, margin=6)
    left_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
    for widget in left:
        left_box.pack_start(widget, widget is left[0], True, 0)
    right_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
    for widget in right_top:
        right_box.pack_start(widget, False, False, 0)
    right_box.pack_start(filled, False, False, 0)
    for widget in right_bottom:
        right_box.pack_start(widget, False, False, 0)
    columns.pack_start(left_box, True, True, 0)
    columns.pack_start(right_box, False, False, 0)
    content.pack_start(columns, True, True, 0)
    content.reorder_child(columns, position or 0)
    columns.show_all()


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
        data, w, h, bpp = self.drawable.get_sub_thumbnail_data(x1, y1, x2 - x1, y2 - y1,
                                                               width, height)
        return Image(w, h, bpp, bytes(data.get_data()), "u8")

    def invalidated(self, _preview=None) -> None:
        if not self.preview.get_update():
            return
        if self.timer:
            GLib.source_remove(self.timer)
        self.timer = GLib.timeout_add(DEBOUNCE_MS, self.ask)

    def options(self) -> dict:
        config = self.config
        return {"style": config.get_property("style"),
                "strength": round(config.get_property("strength"), 4),
                "preserve_colors": config.get_property("preserve-colors")}

    def ask(self) -> bool:
        self.timer = 0
        options = self.options()
        if options["style"] == "none":
            return False
        source = self.source()
        params: dict[str, Any] = {"strength": options["strength"]}
        if options["preserve_colors"] != "none":
            params["preserve_colors"] = options["preserve_colors"]

        def job(client, superseded):
            return run_job(client, superseded, source, style=options["style"], method="fast",
                           params=params)

        asked = time.monotonic()
        serial = self.worker.request(job)
        self.asked[serial] = ({**options, "width": source.width, "height": source.height},
                              asked)
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
        daemon_link.log_event("preview", serial=serial, digest=digest(bytes(result.data)),
                              latency_s=round(latency, 3), **options)
        return False

    def close(self) -> None:
        if self.timer:
            GLib.source_remove(self.timer)
        self.worker.stop()


def fast_dialog(procedure, config, image, drawable, styles: list[Style], state: str) -> bool:
    """Fast Style's dialog; False when cancelled. Nothing touches the image before OK."""
    dialog, note = new_dialog(procedure, config, "Neural Style: Fast Style", state)
    dialog.get_spin_scale("strength", 100.0)
    max_size = dialog.get_spin_scale("max-size", 1.0)
    max_size.set_scale_limits(0, 4096)
    dialog.get_widget("preserve-colors", GObject.TYPE_NONE)
    dialog.get_widget("placement", GObject.TYPE_NONE)
    preview = FastPreview(config, drawable)
    current = config.get_property("style")
    if styles and current not in {s.name for s in styles}:
        current = styles[0].name
        config.set_property("style", current)
    grid, view = style_grid(styles, current, lambda name: config.set_property("style", name))
    view.connect("item-activated", lambda *_: dialog.response(Gtk.ResponseType.OK))
    header = Gtk.Label(label="<b>Style</b>", use_markup=True, xalign=0.0)
    top: list[Gtk.Widget] = [header, grid]
    if note:
        top.insert(0, note_label(note))
    if not styles:
        top.append(note_label("No styles yet: start the daemon (Filters > Neural Style > "
                              "Daemon Status) and open this dialog again."))
    fields = ["strength", "preserve-colors", "max-size", "placement"]
    if len(image.get_layers()) > 1:  # an animation: offer to stylise the layers as frames
        dialog.get_widget("animation-frames", GObject.TYPE_NONE)
        fields.append("animation-frames")
        placement = dialog.get_widget("placement", GObject.TYPE_NONE)
        config.bind_property("animation-frames", placement, "sensitive",
                             GObject.BindingFlags.SYNC_CREATE
                             | GObject.BindingFlags.INVERT_BOOLEAN)
    else:  # last values from an animation do not apply to a single layer
        config.set_property("animation-frames", False)
    daemon_link.log_event("options", procedure=procedure.get_name(), fields=fields)
    layout(dialog, [preview.preview, preview.status], top, fields,
           add_notes(dialog, config, image, drawable))
    view.grab_focus()
    try:
        return dialog.run()
    finally:
        preview.close()
        dialog.destroy()


# ------------------------------------------------------------------------------------------
# Paint Like


def painting_pixbuf(config) -> GdkPixbuf.Pixbuf | None:
    layer = config.get_property("style-layer")
    if layer is not None:
        data, width, height, bpp = layer.get_thumbnail_data(PAINTING_THUMB, PAINTING_THUMB)
        if data is None:
            return None
        return pixbuf_of(Image(width, height, bpp, bytes(data.get_data()), "u8"))
    file = config.get_property("style-file")
    path = file.get_path() if file is not None else None
    if not path or not os.path.isfile(path):
        return None
    try:
        return GdkPixbuf.Pixbuf.new_from_file_at_scale(path, PAINTING_THUMB, PAINTING_THUMB,
                                                       True)
    except GLib.Error:
        return None


def file_preview(chooser: Gtk.FileChooser, picture: Gtk.Image) -> None:
    """The file chooser's preview of the painting under the cursor."""
    path = chooser.get_preview_filename()
    try:
        pixbuf = GdkPixbuf.Pixbuf.new_from_file_at_scale(path, PAINTING_THUMB,
                                                         PAINTING_THUMB, True)
    except (GLib.Error, TypeError):
        chooser.set_preview_widget_active(False)
        return
    picture.set_from_pixbuf(pixbuf)
    chooser.set_preview_widget_active(True)


def painting_chooser(config) -> Gtk.Widget:
    """A file button for the painting whose dialog previews images (bound to style-file)."""
    button = Gtk.FileChooserButton(title="Choose the painting to imitate",
                                   action=Gtk.FileChooserAction.OPEN)
    images = Gtk.FileFilter()
    images.set_name("Images")
    images.add_pixbuf_formats()
    everything = Gtk.FileFilter()
    everything.set_name("All files")
    everything.add_pattern("*")
    button.add_filter(images)
    button.add_filter(everything)
    picture = Gtk.Image()
    button.set_preview_widget(picture)
    button.connect("update-preview", file_preview, picture)
    file = config.get_property("style-file")
    if file is not None and file.get_path():
        button.set_file(file)
    button.connect("file-set", lambda b: config.set_property("style-file", b.get_file()))
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    label = Gtk.Label(label="Painting _file", use_underline=True, xalign=0.0)
    label.set_mnemonic_widget(button)
    row.pack_start(label, False, False, 0)
    row.pack_start(button, True, True, 0)
    return row


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
        self.label = Gtk.Label(label="<b>Draft preview</b> (low resolution)", use_markup=True,
                               xalign=0.0)
        self.status = note_label("Press 'Draft preview' to see roughly what the full run "
                                 "will give, in a few seconds.")
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
        params = {**kwargs["params"], "quality": "draft", "max_size": side}
        params.pop("iterations", None)
        params.pop("preview_every", None)
        kwargs = {**kwargs, "params": params}
        status = self.status

        def job(client, superseded):
            events = client.submit(source, **kwargs)
            try:
                for event in events:
                    if superseded():
                        return None
                    if isinstance(event, Progress):
                        GLib.idle_add(status.set_text,
                                      "Draft: " + daemon_link.progress_text(event))
                    elif isinstance(event, Result):
                        return event.image
            finally:
                events.close()
            return None

        self.serial = self.worker.request(job)
        self.status.set_text("Draft: starting…")
        daemon_link.log_event("draft-asked", serial=self.serial, width=width, height=height,
                              quality=params["quality"], max_size=side)

    def done(self, serial: int, result: Image | None, error: Exception | None) -> bool:
        if error is not None:
            message = (str(error) if not isinstance(error, DaemonError)
                       else daemon_link.describe_error(error))
            self.status.set_text("No draft: " + message)
            daemon_link.log_event("draft-error", error=str(error))
            return False
        if result is None or serial != self.serial:
            return False
        self.picture = result
        self.status.set_text(f"Draft at {result.width} × {result.height} px, quick settings: "
                             "the full run is finer and follows the painting more closely.")
        daemon_link.log_event("draft", digest=digest(bytes(result.data)),
                              width=result.width, height=result.height,
                              label=self.label.get_text(), note=self.status.get_text())
        self.area.set_size_request(result.width, result.height)
        self.paint()  # now if the area has the draft's size, else once it gets it
        return False

    def paint(self) -> None:
        result = self.picture
        size = (self.area.get_allocated_width(), self.area.get_allocated_height())
        if result is None or size != (result.width, result.height):
            return
        kinds = {1: Gimp.ImageType.GRAY_IMAGE, 2: Gimp.ImageType.GRAYA_IMAGE,
                 3: Gimp.ImageType.RGB_IMAGE, 4: Gimp.ImageType.RGBA_IMAGE}
        self.area.draw(0, 0, result.width, result.height, kinds[result.channels],
                       bytes(result.data), result.width * result.channels)
        at = self.area.translate_coordinates(self.area.get_toplevel(), 0, 0) or (None, None)
        daemon_link.log_event("draft-drawn", digest=digest(bytes(result.data)), x=at[-2],
                              y=at[-1], width=result.width, height=result.height)

    def close(self) -> None:
        self.worker.stop()


def paint_like_dialog(procedure, config, image, drawable, styles: list[Style], state: str,
                      request: Callable[[], dict]) -> bool:
    """Paint Like's dialog; False when cancelled."""
    dialog, note = new_dialog(procedure, config, "Neural Style: Paint Like", state)
    dialog.get_spin_scale("strength", 100.0)
    dialog.get_spin_scale("style-scale", 1.0)
    dialog.get_spin_scale("style-strength", 1.0)
    steps = dialog.get_spin_scale("iterations", 1.0)
    steps.set_scale_limits(1, 2000)
    max_size = dialog.get_spin_scale("max-size", 1.0)
    max_size.set_scale_limits(0, 4096)

    steps.set_no_show_all(True)  # shown only for "Custom": a preset's steps are its own

    def quality_changed(c, _p=None) -> None:
        custom = c.get_property("quality") == "custom"
        if custom and c.get_property("iterations") <= 0:
            c.set_property("iterations", 300)
        steps.set_visible(custom)

    config.connect("notify::quality", quality_changed)
    painting = Gtk.Image()

    def painting_changed(*_args) -> None:
        pixbuf = painting_pixbuf(config)
        if pixbuf is None:
            painting.set_from_icon_name("image-missing", Gtk.IconSize.DIALOG)
        else:
            painting.set_from_pixbuf(pixbuf)

    config.connect("notify::style-file", painting_changed)
    config.connect("notify::style-layer", painting_changed)
    painting_changed()
    draft = DraftPreview(config, drawable, request)
    header = Gtk.Label(label="<b>Painting</b>", use_markup=True, xalign=0.0)
    top: list[Gtk.Widget] = [header, painting_chooser(config)]
    if note:
        top.insert(0, note_label(note))
    left = [painting, draft.label, draft.area, draft.button, draft.status]
    layout(dialog, left, top,
           ["style-layer", "quality", "iterations", "style-scale", "style-strength",
            "init-style", "strength", "preserve-colors", "max-size", "placement"],
           add_notes(dialog, config, image, drawable))
    quality_changed(config)
    daemon_link.log_event("paint-like-options", quality=config.get_property("quality"),
                          steps_shown=steps.get_visible(),
                          steps=config.get_property("iterations"))
    try:
        return dialog.run()
    finally:
        draft.close()
        dialog.destroy()
