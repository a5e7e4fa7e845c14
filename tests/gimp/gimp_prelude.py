# Helpers for the batch scripts of the GIMP tests. Runs inside GIMP (python-fu-eval),
# prepended to each test's script; not collected by pytest (no test_ prefix).
import json
import os

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402, F401 - Gio for the scripts

OUT = os.environ["NST_TEST_DIR"]
RESULTS = {}
PDB = Gimp.get_pdb()
LAYER_TYPES = {
    "R'G'B' u8": Gimp.ImageType.RGB_IMAGE,
    "R'G'B'A u8": Gimp.ImageType.RGBA_IMAGE,
    "Y' u8": Gimp.ImageType.GRAY_IMAGE,
    "Y'A u8": Gimp.ImageType.GRAYA_IMAGE,
}


def record(key, value):
    RESULTS[key] = value
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(RESULTS, f)


def wait_file(name, timeout=120):
    """Wait until the test creates OUT/name (it acts on GIMP's UI meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(OUT, name)):
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        time.sleep(0.1)


def read_input(name):
    with open(os.path.join(OUT, name), "rb") as f:
        return f.read()


def new_image(width, height, gray=False):
    base = Gimp.ImageBaseType.GRAY if gray else Gimp.ImageBaseType.RGB
    return Gimp.Image.new(width, height, base)


def add_layer(image, name, fmt, width, height, data, x=0, y=0, parent=None, position=0):
    layer = Gimp.Layer.new(
        image, name, width, height, LAYER_TYPES[fmt], 100.0, Gimp.LayerMode.NORMAL
    )
    image.insert_layer(layer, parent, position)
    layer.set_offsets(x, y)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), fmt, data)
    buffer.flush()
    return layer


def pixels(drawable, fmt, name):
    """Save all of ``drawable`` in babl format ``fmt`` to OUT/name; returns the file name."""
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    data = drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(data))
    return name


def tree(image):
    """Layer names, nested for groups, top first."""

    def walk(layers):
        return [
            [it.get_name(), walk(it.get_children())] if it.is_group() else it.get_name()
            for it in layers
        ]

    return walk(image.get_layers())


def describe(layer, fmt, name):
    _, x, y = layer.get_offsets()
    parent = layer.get_parent()
    info = {
        "name": layer.get_name(),
        "x": x,
        "y": y,
        "width": layer.get_width(),
        "height": layer.get_height(),
        "alpha": layer.has_alpha(),
        "parent": parent.get_name() if parent else None,
        "position": layer.get_image().get_item_position(layer),
        "pixels": pixels(layer, fmt, name + ".raw"),
        "mask": None,
    }
    if layer.get_mask():
        info["mask"] = pixels(layer.get_mask(), "Y u8", name + ".mask.raw")
    return info


def selection_info(image, name):
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return {
        "x": x1,
        "y": y1,
        "width": x2 - x1,
        "height": y2 - y1,
        "pixels": pixels(image.get_selection(), "Y u8", name + ".selection.raw"),
    }


def run_procedure(proc_name, run_mode, image=None, drawables=(), **props):
    """Run a procedure in ``run_mode`` with ``props`` (``_`` for ``-`` in their names)."""
    proc = PDB.lookup_procedure(proc_name)
    config = proc.create_config()
    config.set_property("run-mode", run_mode)
    if image is not None:
        config.set_property("image", image)
        config.set_core_object_array("drawables", list(drawables))
    for key, value in props.items():
        config.set_property(key.replace("_", "-"), value)
    return proc.run(config)


def open_dialog(proc_name, image=None, drawables=(), opening="opening", **props):
    """Run a procedure interactively (its dialog opens), recording ``opening`` just before;
    returns the procedure's result."""
    record(opening, True)
    return run_procedure(proc_name, Gimp.RunMode.INTERACTIVE, image, drawables, **props)


def call(proc_name, image, drawables, **props):
    """Run a procedure non-interactively; returns (status nick, error text, first value)."""
    result = run_procedure(proc_name, Gimp.RunMode.NONINTERACTIVE, image, drawables, **props)
    status = result.index(0)
    value = result.index(1) if result.length() > 1 else None
    if status != Gimp.PDBStatusType.SUCCESS:
        return status.value_nick, str(value), None
    return status.value_nick, None, value
