"""The Fast Style and Paint Like dialogs: GIMP's own ProcedureDialog with a live preview
(``live_preview``), a grid of style thumbnails and notes that explain the options
(``dialog_widgets``). Nothing is written to the image before OK.
"""

from __future__ import annotations

from collections.abc import Callable

import gi

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
import daemon_link  # noqa: E402
from daemon_link import DOWN, SLOW, Style  # noqa: E402
from dialog_widgets import (  # noqa: E402
    add_notes,
    note_label,
    painting_chooser,
    painting_pixbuf,
    style_grid,
)
from gi.repository import GimpUi, GObject, Gtk  # noqa: E402
from live_preview import DraftPreview, FastPreview  # noqa: E402


def daemon_note(state: str) -> str:
    if state == DOWN:
        return (
            "The Neural Style daemon is not running: it starts with the preview or "
            "when you press OK."
        )
    if state == SLOW:
        return (
            "The Neural Style daemon is slow to answer (busy or just started): the "
            "style list may be out of date."
        )
    return ""


def new_dialog(procedure, config, title: str, state: str):
    GimpUi.init(procedure.get_name())
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    note = daemon_note(state)
    daemon_link.log_event("dialog", procedure=procedure.get_name(), daemon=state, note=note)
    return dialog, note


def layout(
    dialog,
    left: list[Gtk.Widget],
    right_top: list[Gtk.Widget],
    fields: list[str],
    right_bottom: list[Gtk.Widget],
) -> None:
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


def fast_dialog(procedure, config, image, drawable, styles: list[Style], state: str) -> bool:
    """Fast Style's dialog; False when cancelled. Nothing touches the image before OK."""
    dialog, note = new_dialog(procedure, config, "Neural Style: Fast Style", state)
    dialog.get_spin_scale("strength", 100.0)
    max_size = dialog.get_spin_scale("max-size", 1.0)
    max_size.set_scale_limits(0, 4096)
    dialog.get_widget("preserve-colors", GObject.TYPE_NONE)
    dialog.get_widget("speed", GObject.TYPE_NONE)
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
        top.append(
            note_label(
                "No styles yet: start the daemon (Filters > Neural Style > "
                "Daemon Status) and open this dialog again."
            )
        )
    fields = ["strength", "preserve-colors", "speed", "max-size", "placement"]
    if len(image.get_layers()) > 1:  # an animation: offer to stylise the layers as frames
        dialog.get_widget("animation-frames", GObject.TYPE_NONE)
        fields.append("animation-frames")
        placement = dialog.get_widget("placement", GObject.TYPE_NONE)
        config.bind_property(
            "animation-frames",
            placement,
            "sensitive",
            GObject.BindingFlags.SYNC_CREATE | GObject.BindingFlags.INVERT_BOOLEAN,
        )
    else:  # last values from an animation do not apply to a single layer
        config.set_property("animation-frames", False)
    daemon_link.log_event("options", procedure=procedure.get_name(), fields=fields)
    layout(
        dialog,
        [preview.preview, preview.status],
        top,
        fields,
        add_notes(dialog, config, image, drawable),
    )
    view.grab_focus()
    try:
        return dialog.run()
    finally:
        preview.close()
        dialog.destroy()


# ------------------------------------------------------------------------------------------
# Paint Like


def paint_like_dialog(
    procedure, config, image, drawable, styles: list[Style], state: str, request: Callable[[], dict]
) -> bool:
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
    layout(
        dialog,
        left,
        top,
        [
            "style-layer",
            "quality",
            "iterations",
            "style-scale",
            "style-strength",
            "init-style",
            "strength",
            "preserve-colors",
            "max-size",
            "placement",
        ],
        add_notes(dialog, config, image, drawable),
    )
    quality_changed(config)
    daemon_link.log_event(
        "paint-like-options",
        quality=config.get_property("quality"),
        steps_shown=steps.get_visible(),
        steps=config.get_property("iterations"),
    )
    try:
        return dialog.run()
    finally:
        draft.close()
        dialog.destroy()
