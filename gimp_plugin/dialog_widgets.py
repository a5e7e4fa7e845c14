"""The widgets of the Fast Style and Paint Like dialogs: pixbufs of protocol images, the
grid of style thumbnails, the notes under the options and the painting chooser."""

from __future__ import annotations

import os
from collections.abc import Callable

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from daemon_link import Style  # noqa: E402
from gi.repository import GdkPixbuf, Gimp, GLib, Gtk, Pango  # noqa: E402

from nst_client.protocol import Image  # noqa: E402

THUMB = 72  # pixels: the style thumbnails in the grid
PAINTING_THUMB = 160  # pixels: the painting chosen for Paint Like
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
        GLib.Bytes.new(data),
        GdkPixbuf.Colorspace.RGB,
        channels == 4,
        8,
        image.width,
        image.height,
        image.width * channels,
    )


def placeholder(size: int) -> GdkPixbuf.Pixbuf:
    pixbuf = GdkPixbuf.Pixbuf.new(GdkPixbuf.Colorspace.RGB, False, 8, size, size)
    pixbuf.fill(0x808080FF)
    return pixbuf


# ------------------------------------------------------------------------------------------
# styles and notes


def note_label(text: str = "") -> Gtk.Label:
    label = Gtk.Label(label=text, xalign=0.0, wrap=True, max_width_chars=NOTE_WIDTH)
    label.set_line_wrap_mode(Pango.WrapMode.WORD)
    label.get_style_context().add_class("dim-label")
    return label


def style_grid(
    styles: list[Style], current: str, on_select: Callable[[str], None]
) -> tuple[Gtk.Widget, Gtk.IconView]:
    """A scrolled grid of style thumbnails with title and artist."""
    store = Gtk.ListStore(GdkPixbuf.Pixbuf, str, str, str)
    for style in styles:
        if style.preview is not None:
            pixbuf = pixbuf_of(style.preview).scale_simple(
                THUMB, THUMB, GdkPixbuf.InterpType.BILINEAR
            )
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
    scrolled = Gtk.ScrolledWindow(
        hscrollbar_policy=Gtk.PolicyType.NEVER, vscrollbar_policy=Gtk.PolicyType.AUTOMATIC
    )
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
    return (
        f"Computes at {max_size} px on the long side, result upscaled to {side} px "
        "(a little softer). Raise the limit for more detail, at the cost of time."
    )


def cover_note(drawable: Gimp.Drawable) -> str:
    from layer_io import covering_layers

    covering = covering_layers(drawable)
    if not covering:
        return ""
    names = ", ".join(f"'{layer.get_name()}'" for layer in covering[:2])
    more = " and others" if len(covering) > 2 else ""
    return (
        f"Visible layers above this one ({names}{more}) may hide the result: "
        "choose 'On top of all layers' to see it at once."
    )


def add_notes(dialog, config, image, drawable) -> list[str]:
    """Labels under the options: the size limit's effect and layers that would cover."""
    size = note_label(size_note(drawable, image, config.get_property("max-size")))
    config.connect(
        "notify::max-size",
        lambda c, _p: size.set_text(size_note(drawable, image, c.get_property("max-size"))),
    )
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


# ------------------------------------------------------------------------------------------
# the painting


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
        return GdkPixbuf.Pixbuf.new_from_file_at_scale(path, PAINTING_THUMB, PAINTING_THUMB, True)
    except GLib.Error:
        return None


def file_preview(chooser: Gtk.FileChooser, picture: Gtk.Image) -> None:
    """The file chooser's preview of the painting under the cursor."""
    path = chooser.get_preview_filename()
    try:
        pixbuf = GdkPixbuf.Pixbuf.new_from_file_at_scale(path, PAINTING_THUMB, PAINTING_THUMB, True)
    except (GLib.Error, TypeError):
        chooser.set_preview_widget_active(False)
        return
    picture.set_from_pixbuf(pixbuf)
    chooser.set_preview_widget_active(True)


def painting_chooser(config) -> Gtk.Widget:
    """A file button for the painting whose dialog previews images (bound to style-file)."""
    button = Gtk.FileChooserButton(
        title="Choose the painting to imitate", action=Gtk.FileChooserAction.OPEN
    )
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
