"""GIMP drawables ⇄ the client's ``Image``: pixel formats, reading regions, result layers."""

from __future__ import annotations

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from daemon_link import DaemonError  # noqa: E402
from gi.repository import Gegl, Gimp  # noqa: E402
from regions import Rect, region_to_send  # noqa: E402

from nst_client.protocol import Image  # noqa: E402

BABL_TYPE = {"u8": "u8", "u16": "u16", "f32": "float"}


class PluginError(Exception):
    """A problem with the user's image or choices, reported in plain words."""


def sample_type(image: Gimp.Image) -> str:
    """Client dtype matching the image's precision: u8, u16, else f32."""
    name = image.get_precision().value_name
    if "_U8_" in name:
        return "u8"
    if "_U16_" in name:
        return "u16"
    return "f32"


def babl_format(gray: bool, alpha: bool, dtype: str) -> str:
    """Babl format of perceptual (gamma-encoded) pixels, e.g. ``R'G'B'A u8``."""
    model = ("Y'" if gray else "R'G'B'") + ("A" if alpha else "")
    return f"{model} {BABL_TYPE[dtype]}"


def check_image_type(image: Gimp.Image) -> None:
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise PluginError(
            "Neural Style works on RGB and grayscale images. This image uses an indexed "
            "palette: convert it with Image > Mode > RGB first."
        )


def selection_rect(image: Gimp.Image) -> Rect | None:
    """Bounding box of the selection in image coordinates; None without a selection."""
    if Gimp.Selection.is_empty(image):
        return None
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return Rect(x1, y1, x2 - x1, y2 - y1) if non_empty else None


def covers(image: Gimp.Image, selection: Rect, layer: Rect) -> bool:
    """Whether the selection is fully on over all of ``layer`` (e.g. Select All): a mask
    would then change nothing."""
    if (
        selection.x > layer.x
        or selection.y > layer.y
        or selection.x + selection.width < layer.x + layer.width
        or selection.y + selection.height < layer.y + layer.height
    ):
        return False
    rect = Gegl.Rectangle.new(layer.x, layer.y, layer.width, layer.height)
    data = image.get_selection().get_buffer().get(rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
    return not bytes(data).strip(b"\xff")


def layer_of(drawable: Gimp.Drawable) -> Gimp.Drawable:
    """The layer to stylise for a selected drawable: a layer mask stands for its layer
    (after a selection run GIMP leaves the new layer's mask selected)."""
    if drawable.is_layer_mask():
        return Gimp.Layer.from_mask(drawable)
    return drawable


def check_drawables(drawables: list[Gimp.Drawable]) -> list[Gimp.Drawable]:
    """The layers to stylise; a PluginError for channels (before any dialog opens)."""
    if not drawables:
        raise PluginError("Select a layer to stylize.")
    layers = []
    for drawable in drawables:
        layer = layer_of(drawable)
        if not layer.is_layer():
            raise PluginError(
                f"'{drawable.get_name()}' is a channel, not a layer: select a layer in the "
                "Layers panel to stylize it."
            )
        if layer not in layers:
            layers.append(layer)
    return layers


def region_size(image: Gimp.Image, drawable: Gimp.Drawable) -> tuple[int, int]:
    """(width, height) of what a run on ``drawable`` sends (selection box plus context)."""
    layer = layer_of(drawable)
    rect = layer_rect(layer)
    selection = selection_rect(image)
    region = region_to_send(rect, selection) or Rect(0, 0, rect.width, rect.height)
    return region.width, region.height


def _overlaps(a: Rect, b: Rect) -> bool:
    return (
        a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    )


def covering_layers(drawable: Gimp.Drawable) -> list[Gimp.Layer]:
    """Visible layers above ``drawable`` (in its group and above its groups) that overlap it:
    a result placed right above it would be hidden under them."""
    layer = layer_of(drawable)
    image = layer.get_image()
    area = layer_rect(layer)
    found = []
    item = layer
    while item is not None:
        parent = item.get_parent()
        siblings = parent.get_children() if parent is not None else image.get_layers()
        for other in siblings[: image.get_item_position(item)]:
            if (
                other.get_visible()
                and other.get_opacity() > 0
                and _overlaps(layer_rect(other), area)
            ):
                found.append(other)
        item = parent
    return found


def layer_rect(drawable: Gimp.Drawable) -> Rect:
    _, x, y = drawable.get_offsets()
    return Rect(x, y, drawable.get_width(), drawable.get_height())


def read_region(drawable: Gimp.Drawable, rect: Rect, fmt: str, channels: int, dtype: str) -> Image:
    buffer = drawable.get_buffer()
    gegl_rect = Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)
    data = buffer.get(gegl_rect, 1.0, fmt, Gegl.AbyssPolicy.NONE)
    return Image(rect.width, rect.height, channels, bytes(data), dtype)


class Source:
    """One selected layer and the part of it that is sent to the daemon."""

    def __init__(self, image: Gimp.Image, drawable: Gimp.Drawable, placement: str = "above"):
        drawable = layer_of(drawable)
        if not drawable.is_layer():
            raise PluginError(
                f"'{drawable.get_name()}' is a channel, not a layer: select a layer in the "
                "Layers panel to stylize it."
            )
        self.placement = placement
        self.image = image
        self.drawable = drawable
        self.gray = image.get_base_type() == Gimp.ImageBaseType.GRAY
        self.alpha = drawable.has_alpha()
        self.dtype = sample_type(image)
        self.format = babl_format(self.gray, self.alpha, self.dtype)
        self.channels = (1 if self.gray else 3) + (1 if self.alpha else 0)
        self.layer = layer_rect(drawable)
        self.selection = selection_rect(image)
        region = region_to_send(self.layer, self.selection)
        if region is None:
            raise PluginError(
                f"The selection does not touch the layer '{drawable.get_name()}'. "
                "Select an area on the layer, or select nothing to stylize the whole layer."
            )
        self.region = region
        if self.selection is not None and covers(image, self.selection, self.layer):
            self.selection = None  # Select All: the whole layer, no all-white mask

    def pixels(self) -> Image:
        return read_region(self.drawable, self.region, self.format, self.channels, self.dtype)

    def check_result(self, result: Image) -> None:
        if (result.width, result.height, result.channels, result.dtype) != (
            self.region.width,
            self.region.height,
            self.channels,
            self.dtype,
        ):
            raise DaemonError("internal", "the daemon returned an image of another size or type")

    def add_result(
        self,
        result: Image,
        name: str,
        parent: Gimp.Layer | None = None,
        position: int | None = None,
    ) -> Gimp.Layer:
        """New layer with ``result`` directly above the source (or on top of the image, with
        placement "top"; or at ``position`` in the group ``parent`` when given); masked by
        the selection."""
        kinds = {
            (False, False): Gimp.ImageType.RGB_IMAGE,
            (False, True): Gimp.ImageType.RGBA_IMAGE,
            (True, False): Gimp.ImageType.GRAY_IMAGE,
            (True, True): Gimp.ImageType.GRAYA_IMAGE,
        }
        layer = Gimp.Layer.new(
            self.image,
            name,
            self.region.width,
            self.region.height,
            kinds[(self.gray, self.alpha)],
            100.0,
            Gimp.LayerMode.NORMAL,
        )
        if position is not None:
            self.image.insert_layer(layer, parent, position)
        elif self.placement == "top":
            self.image.insert_layer(layer, None, 0)
        else:
            self.image.insert_layer(
                layer, self.drawable.get_parent(), self.image.get_item_position(self.drawable)
            )
        layer.set_offsets(self.layer.x + self.region.x, self.layer.y + self.region.y)
        buffer = layer.get_buffer()
        rect = Gegl.Rectangle.new(0, 0, self.region.width, self.region.height)
        buffer.set(rect, self.format, result.data)
        buffer.flush()
        layer.update(0, 0, self.region.width, self.region.height)
        if self.selection is not None:
            layer.add_mask(layer.create_mask(Gimp.AddMaskType.SELECTION))
        return layer


def animation_frames(image: Gimp.Image) -> list[Gimp.Layer]:
    """The image's top-level layers as animation frames, first frame first: GIMP's
    convention (Filters > Animation, GIF export) is that the bottom layer is the first
    frame. A PluginError, before any work, for layer groups or frames that differ in size
    or position (the motion between frames is followed pixel by pixel)."""
    layers = list(reversed(image.get_layers()))
    if not layers:
        raise PluginError("The image has no layers to use as animation frames.")
    for layer in layers:
        if layer.is_group():
            raise PluginError(
                f"'{layer.get_name()}' is a layer group: with 'Layers are animation frames' "
                "every top-level layer is one frame. Merge the group into one layer (Layer > "
                "Merge Down, or Image > Merge Visible Layers on a copy) first."
            )
    first = layer_rect(layers[0])
    for layer in layers[1:]:
        rect = layer_rect(layer)
        if rect != first:
            raise PluginError(
                "Animation frames must all have the same size and position: "
                f"'{layers[0].get_name()}' is {first.width} × {first.height} at "
                f"({first.x}, {first.y}), '{layer.get_name()}' is {rect.width} × "
                f"{rect.height} at ({rect.x}, {rect.y}). Use Layer > Layer to Image Size "
                "on each frame first."
            )
    return layers


def flat_rgb(drawable: Gimp.Drawable) -> Image:
    """All of a drawable as 8-bit RGB (a style image needs no alpha or high bit depth)."""
    rect = Rect(0, 0, drawable.get_width(), drawable.get_height())
    return read_region(drawable, rect, "R'G'B' u8", 3, "u8")


def load_style_file(file) -> Image:
    """A style image read from any file format GIMP can open."""
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, file)
    except Exception as exc:  # GLib.Error from the file loader
        raise PluginError(f"Cannot open the style image {file.get_path()}: {exc}") from exc
    if image is None:
        raise PluginError(f"Cannot open the style image {file.get_path()}.")
    try:
        return flat_rgb(image.flatten())
    finally:
        image.delete()
