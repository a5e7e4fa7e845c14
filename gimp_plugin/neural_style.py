#!/usr/bin/env python3
"""Neural Style for GIMP 3: Filters > Neural Style > Fast Style / Paint Like / Daemon Status.

The pixels go to the Neural Style daemon (see ``daemon_link``); the result comes back as a
new layer above each selected layer. Every procedure also runs non-interactively, e.g.
from a Python-Fu batch script:

    proc = Gimp.get_pdb().lookup_procedure("python-fu-neural-style-fast")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("style", "starry-night")
    result = proc.run(config)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gimp, Gio, GLib, GObject  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import daemon_link  # noqa: E402
from daemon_link import (  # noqa: E402
    DOWN,
    DaemonError,
    FastParams,
    GatysParams,
    ProtocolError,
    Style,
    TrainParams,
    short_name,
)
from daemon_status import daemon_action, status_dialog  # noqa: E402
from job_runs import ProgressBar, cancelled, fail, run_frames, run_jobs, success  # noqa: E402
from layer_io import (  # noqa: E402
    PluginError,
    check_drawables,
    check_image_type,
    flat_rgb,
    load_style_file,
)

FAST = "python-fu-neural-style-fast"
PAINT_LIKE = "python-fu-neural-style-paint-like"
STATUS = "python-fu-neural-style-status"
TRAIN = "python-fu-neural-style-train"
MENU = "<Image>/Filters/Neural Style"
NO_STYLE = "none"
RW = GObject.ParamFlags.READWRITE
HELP_DOMAIN = "neural-style"
HELP_PAGE = "index.html"

_styles_cache: tuple[list[Style], str] | None = None


def styles() -> tuple[list[Style], str]:
    """The daemon's styles (fetched once per plug-in process) and the daemon's state
    (``ONLINE``, ``SLOW`` or ``DOWN``)."""
    global _styles_cache
    if _styles_cache is None:
        _styles_cache = daemon_link.known_styles()
    return _styles_cache


def style_choice(with_none: str | None = None) -> tuple[Gimp.Choice, str]:
    """A Gimp.Choice listing the daemon's styles, and its default nick."""
    choice = Gimp.Choice.new()
    entries, _ = styles()
    if with_none:
        choice.add(NO_STYLE, 0, with_none, "")
    for index, style in enumerate(entries, start=1):
        choice.add(style.name, index, style.title, style.byline)
    if not entries and not with_none:
        choice.add(NO_STYLE, 0, "(no styles: start the daemon)", "")
    default = NO_STYLE if with_none or not entries else entries[0].name
    return choice, default


def style_title(name: str) -> str:
    return next((s.title for s in styles()[0] if s.name == name), name)


# ------------------------------------------------------------------------------------------
# requests


def common_params(config: Gimp.ProcedureConfig) -> dict:
    """The fields every stylisation takes (``nst_client.params.CommonParams``)."""
    colors = config.get_property("preserve-colors")
    return {
        "strength": config.get_property("strength"),
        "preserve_colors": None if colors == NO_STYLE else colors,
        "max_size": config.get_property("max-size") or None,
    }


# ------------------------------------------------------------------------------------------
# dialogs


def show_dialog(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, fields: list[str]) -> bool:
    """The procedure's dialog with a note when the daemon is down; False when cancelled."""
    from gi.repository import GimpUi

    GimpUi.init(procedure.get_name())
    title = procedure.get_menu_label().replace("_", "").rstrip(".")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, f"Neural Style: {title}")
    _, state = styles()
    if state == DOWN:
        dialog.get_label(
            "daemon-note",
            "The Neural Style daemon is not running: it will be started when you press OK.",
            False,
            False,
        )
        fields = ["daemon-note", *fields]
    dialog.fill(fields)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def first_layer(image, drawables) -> Gimp.Drawable | None:
    """The layer a dialog previews; raises PluginError for channels before it opens."""
    check_image_type(image)
    return check_drawables(drawables)[0]


# ------------------------------------------------------------------------------------------
# procedures


def run_fast(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE:
        try:
            layer = first_layer(image, drawables)
        except PluginError as exc:
            return fail(procedure, str(exc))
        import dialogs

        entries, state = styles()
        if not dialogs.fast_dialog(procedure, config, image, layer, entries, state):
            return cancelled(procedure)
    style = config.get_property("style")
    if style == NO_STYLE:
        return fail(
            procedure,
            "No style to choose from: GIMP could not reach the Neural Style "
            "daemon when it listed the styles. Start it (Filters > Neural "
            "Style > Daemon Status) and open this dialog again.",
        )

    def request() -> dict:
        params = FastParams(**common_params(config), speed=config.get_property("speed"))
        return {"style": style, "method": "fast", "params": params}

    title = short_name(style_title(style))
    if config.get_property("animation-frames"):
        return run_frames(procedure, image, request, title)
    return run_jobs(procedure, image, drawables, request, title, config.get_property("placement"))


def painting_name(config) -> str | None:
    style_layer = config.get_property("style-layer")
    style_file = config.get_property("style-file")
    if style_layer is not None:
        return style_layer.get_name()
    if style_file is not None and style_file.get_path():
        return Path(style_file.get_path()).stem
    return None


def paint_like_request(config, batch: bool) -> Callable[[], dict]:
    """The job for Paint Like; ``batch``: a positive ``iterations`` overrides the preset
    (as it always did in batch calls); in the dialog only "Custom" uses it."""

    def request() -> dict:
        style_layer = config.get_property("style-layer")
        style_file = config.get_property("style-file")
        if style_layer is not None:
            style_image = flat_rgb(style_layer)
        elif style_file is not None and style_file.get_path():
            style_image = load_style_file(style_file)
        else:
            raise PluginError(NO_PAINTING)
        quality = config.get_property("quality")
        steps = config.get_property("iterations")
        init_style = config.get_property("init-style")
        params = GatysParams(
            **common_params(config),
            quality="balanced" if quality == "custom" else quality,
            style_scale=config.get_property("style-scale"),
            style_strength=config.get_property("style-strength"),
            iterations=steps if steps > 0 and (quality == "custom" or batch) else None,
            init="fast" if init_style != NO_STYLE else "content",
            init_style=init_style if init_style != NO_STYLE else None,
        )
        return {"style_image": style_image, "method": "gatys", "params": params}

    return request


NO_PAINTING = (
    "Choose the painting to imitate (an image file, or a layer of an open image) "
    "in Filters > Neural Style > Paint Like."
)


def run_paint_like(procedure, run_mode, image, drawables, config, data):
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    if interactive:
        try:
            layer = first_layer(image, drawables)
        except PluginError as exc:
            return fail(procedure, str(exc))
        import dialogs

        entries, state = styles()
        request = paint_like_request(config, batch=False)
        if not dialogs.paint_like_dialog(procedure, config, image, layer, entries, state, request):
            return cancelled(procedure)
    name = painting_name(config)
    if name is None:
        return fail(procedure, NO_PAINTING)
    layer_name = short_name(f"Paint Like: {name}")
    batch = run_mode == Gimp.RunMode.NONINTERACTIVE
    return run_jobs(
        procedure,
        image,
        drawables,
        paint_like_request(config, batch),
        layer_name,
        config.get_property("placement"),
        name if interactive else None,
    )


def run_train(procedure, run_mode, image, drawables, config, data):
    fields = ["name", "title", "dataset", "steps", "image-size"]
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(procedure, config, fields):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    name = config.get_property("name")
    dataset = config.get_property("dataset")
    if len(drawables) != 1:
        return fail(procedure, "Select exactly one layer: the painting to learn the style of.")
    if dataset is None or not dataset.get_path():
        return fail(procedure, "Choose a folder of photos to train on (a few hundred or more).")
    try:
        params = TrainParams(
            dataset=dataset.get_path(),
            steps=config.get_property("steps"),
            image_size=config.get_property("image-size"),
            title=config.get_property("title") or "",
        )
    except ProtocolError as exc:
        return fail(procedure, str(exc))
    progress = ProgressBar(f"Neural Style: training '{name}'", 1)
    trained = name
    try:
        with daemon_link.connect() as client:
            for event in client.train(flat_rgb(drawables[0]), name=name, params=params):
                progress.event(event)
                if isinstance(event, daemon_link.Result):
                    trained = event.style or name
    except (DaemonError, OSError) as exc:
        return fail(procedure, daemon_link.describe_error(exc))
    finally:
        progress.end()
    daemon_link.known_styles()  # GIMP lists the new style from its next start
    return success(procedure, GObject.Value(GObject.TYPE_STRING, trained))


def run_status(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE:
        status_dialog(STATUS)
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    try:
        status = daemon_action(config.get_property("action"))
    except DaemonError as exc:
        return fail(procedure, daemon_link.describe_error(exc))
    reply = status.to_wire("") if status is not None else None
    return success(procedure, GObject.Value(GObject.TYPE_STRING, json.dumps(reply, default=str)))


# ------------------------------------------------------------------------------------------
# registration


def add_common_arguments(procedure: Gimp.Procedure, max_size: int) -> None:
    procedure.add_double_argument(
        "strength",
        "Stren_gth",
        "How much of the style to apply (0: none, 1: all)",
        0.0,
        1.0,
        1.0,
        RW,
    )
    colors = Gimp.Choice.new()
    colors.add(NO_STYLE, 0, "Colours of the style", "")
    colors.add("luminance", 1, "Keep the layer's colours", "Only the lightness is stylized")
    colors.add("histogram", 2, "Match the layer's colour histogram", "")
    procedure.add_choice_argument(
        "preserve-colors", "Colo_urs", "Keep the colours of the layer", colors, NO_STYLE, RW
    )
    procedure.add_int_argument(
        "max-size",
        "Output si_ze limit",
        "Long side in pixels that the style is computed at "
        "(0: full size); the result is scaled back up",
        0,
        16384,
        max_size,
        RW,
    )
    procedure.add_layer_return_value(
        "layer", "Layer", "The new layer (the last one made)", True, RW
    )


def add_placement_argument(procedure: Gimp.Procedure) -> None:
    placement = Gimp.Choice.new()
    placement.add("above", 0, "Right above the layer", "")
    placement.add("top", 1, "On top of all layers", "")
    procedure.add_choice_argument(
        "placement",
        "Ne_w layer",
        "Where the new layer goes: right above its source, or on "
        "top of the image where no layer hides it",
        placement,
        "above",
        RW,
    )


def help_uri() -> Gio.File:
    return Gio.File.new_for_path(str(daemon_link.HELP_DIR))


class NeuralStyle(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False

    def do_query_procedures(self):
        self.set_help_domain(HELP_DOMAIN, help_uri())
        return [FAST, PAINT_LIKE, TRAIN, STATUS]

    def do_create_procedure(self, name):
        run = {FAST: run_fast, PAINT_LIKE: run_paint_like, TRAIN: run_train, STATUS: run_status}[
            name
        ]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_attribution("Neural Style for GIMP", "MIT", "2026")
        if name == STATUS:
            procedure.set_image_types("*")
            procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
            procedure.set_menu_label("_Daemon Status...")
            procedure.set_documentation(
                "Show, start or stop the Neural Style daemon",
                "Shows the daemon's device, job queue and loaded models; starts or stops it. "
                "Non-interactive: action 'show', 'start' or 'stop'; returns the status as JSON.",
                name,
            )
            actions = Gimp.Choice.new()
            for index, action in enumerate(("show", "start", "stop")):
                actions.add(action, index, action.capitalize(), "")
            procedure.add_choice_argument("action", "Action", "What to do", actions, "show", RW)
            procedure.add_string_return_value(
                "status", "Status", "The daemon's status as JSON (null when down)", "", RW
            )
            procedure.add_menu_path(MENU)
            return procedure
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES
        )
        if name == TRAIN:
            procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
            procedure.set_menu_label("_Train Style from Layer...")
            procedure.set_documentation(
                "Train a fast style from the selected layer",
                "Trains a fast-style network on a folder of photos so that it paints like the "
                "selected layer. Takes long (hours on a CPU); the style then appears in Fast "
                "Style (in batch calls after GIMP restarts). Returns the style's name.",
                name,
            )
            procedure.add_string_argument(
                "name",
                "Style _name",
                "Name of the new style (letters, digits, - _ .)",
                "my-style",
                RW,
            )
            procedure.add_string_argument(
                "title", "_Title", "Title shown in the style list", "", RW
            )
            procedure.add_file_argument(
                "dataset",
                "_Photos folder",
                "Folder of photos to train on",
                Gimp.FileChooserAction.SELECT_FOLDER,
                True,
                None,
                RW,
            )
            procedure.add_int_argument(
                "steps", "_Steps", "Training steps (batches of photos)", 1, 10_000_000, 2000, RW
            )
            procedure.add_int_argument(
                "image-size",
                "_Image size",
                "Size the photos are cropped to for training",
                32,
                4096,
                256,
                RW,
            )
            procedure.add_string_return_value("style", "Style", "The new style's name", "", RW)
        elif name == FAST:
            procedure.set_menu_label("_Fast Style...")
            procedure.set_documentation(
                "Repaint the layer in a style, in seconds",
                "Applies a fast (feed-forward) style model to each selected layer, or to the "
                "selection, and adds the result as a new layer above it.",
                name,
            )
            choice, default = style_choice()
            procedure.add_choice_argument("style", "St_yle", "Style model", choice, default, RW)
            add_common_arguments(procedure, 1600)
            speeds = Gimp.Choice.new()
            for index, (nick, label, help_text) in enumerate(daemon_link.SPEED_CHOICES):
                speeds.add(nick, index, label, help_text)
            procedure.add_choice_argument(
                "speed",
                "Spee_d",
                "Which of the style's networks runs: the lite one is quicker, the full one "
                "has more detail (Automatic: lite on a CPU, full on a GPU)",
                speeds,
                "auto",
                RW,
            )
            add_placement_argument(procedure)
            procedure.add_boolean_argument(
                "animation-frames",
                "La_yers are animation frames",
                "Stylise every layer of the image as a frame of one animation (the bottom "
                "layer first), consistently over time, into a new layer group on top",
                False,
                RW,
            )
        else:
            procedure.set_menu_label("_Paint Like...")
            procedure.set_documentation(
                "Repaint the layer like any painting",
                "Optimises each selected layer, or the selection, to take the style of a "
                "painting given as an image file or as a layer of an open image; slow, but "
                "works with any painting. Adds the result as a new layer above the source.",
                name,
            )
            procedure.add_file_argument(
                "style-file",
                "Painting _file",
                "The painting to imitate",
                Gimp.FileChooserAction.OPEN,
                True,
                None,
                RW,
            )
            procedure.add_drawable_argument(
                "style-layer",
                "...or a la_yer",
                "A layer of an open image to imitate (used instead of the file when set)",
                True,
                RW,
            )
            quality = Gimp.Choice.new()
            for index, (nick, label) in enumerate(
                (
                    ("draft", "Draft (quick)"),
                    ("balanced", "Balanced"),
                    ("high", "High (slow)"),
                    ("custom", "Custom number of steps"),
                )
            ):
                quality.add(nick, index, label, "")
            procedure.add_choice_argument(
                "quality", "_Quality", "Quality preset", quality, "balanced", RW
            )
            procedure.add_int_argument(
                "iterations",
                "Custom ste_ps",
                "Optimisation steps for quality 'custom' (in batch "
                "calls a positive value also overrides a preset)",
                0,
                5000,
                0,
                RW,
            )
            procedure.add_double_argument(
                "style-scale",
                "Style sc_ale",
                "Size of the brush strokes relative to the painting",
                0.25,
                4.0,
                1.0,
                RW,
            )
            choice, default = style_choice(with_none="No (start from the layer)")
            procedure.add_choice_argument(
                "init-style",
                "Start from a fast s_tyle",
                "Start from this fast style's result",
                choice,
                default,
                RW,
            )
            add_common_arguments(procedure, 512)
            add_placement_argument(procedure)
            procedure.add_double_argument(
                "style-strength",
                "Style stre_ngth",
                "Weight of the painting's style against the layer's content (1: balanced)",
                0.1,
                10.0,
                1.0,
                RW,
            )
        procedure.add_menu_path(MENU)
        return procedure


Gimp.main(NeuralStyle.__gtype__, sys.argv)
