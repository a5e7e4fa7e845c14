"""From parsed arguments to what a command needs: the endpoint, a client, the style of a
run (``StyleSpec``), a runner (daemon or in-process) and the output of every picture."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nst_client.params import METHOD_PARAMS
from nst_client.protocol import default_endpoint
from nst_core.errors import ImageError
from nst_daemon.batch import DaemonRunner, LocalRunner, Runner, StyleSpec, Task, input_clash
from nst_daemon.cli.errors import EXIT_USAGE, CommandError, say
from nst_daemon.imagefile import output_format, read_image


def endpoint_of(args: argparse.Namespace) -> str:
    return args.endpoint or default_endpoint()


def connect(args: argparse.Namespace, *, autostart: bool = True) -> Any:
    from nst_client.client import Client

    return Client(endpoint_of(args), autostart=autostart, on_status=say)


def looks_like_path(style: str) -> bool:
    from nst_core.styles import looks_like_model_file  # torch-free

    return looks_like_model_file(style)


def file_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "styled"


def check_style_args(args: argparse.Namespace) -> None:
    if bool(args.style) == bool(args.style_image):
        raise CommandError(
            "give either --style NAME|FILE or --style-image FILE",
            hint="see `nst styles` for names",
            exit_code=EXIT_USAGE,
        )


def style_label(args: argparse.Namespace) -> str:
    """A short name of the style for output file names."""
    if args.style:
        label = Path(args.style).stem if looks_like_path(args.style) else args.style
    else:
        label = "+".join(Path(p).stem for p in args.style_image)
    return file_label(label)


def style_spec(args: argparse.Namespace) -> StyleSpec:
    """The part of the request every picture shares."""
    style_images = [read_image(p) for p in args.style_image]
    method = args.method or ("gatys" if style_images else "fast")
    if method == "gatys" and args.speed is not None:
        raise CommandError(
            "--speed chooses the network of a fast style; the gatys method has none",
            hint="leave out --speed, or use --style NAME",
            exit_code=EXIT_USAGE,
        )
    given = {
        key: value
        for key, value in (
            ("strength", args.strength),
            ("preserve_colors", args.preserve_colors),
            ("iterations", args.iterations),
            ("quality", args.quality),
            ("max_size", args.max_size),
            ("speed", args.speed),
        )
        if value is not None
    }
    params = METHOD_PARAMS[method].from_wire(given)  # the daemon's checks and messages
    style = args.style
    if style and looks_like_path(style):
        path = Path(style).expanduser()
        if not path.is_file():
            raise CommandError(
                f"style model file not found: {path}",
                hint="give a style name (see `nst styles`) or an existing model file",
            )
        if not args.local:
            from nst_client.client import is_local_endpoint

            if not is_local_endpoint(endpoint_of(args)):
                raise CommandError(
                    f"a model file cannot be sent to the daemon at {endpoint_of(args)}",
                    hint="import it on the daemon's machine with `nst styles import FILE`, "
                    "then use --style NAME",
                )
        style = import_style_file(path)
    return StyleSpec(style, style_images, params)


def import_style_file(path: Path) -> str:
    """Import a model file into the user styles so the daemon can load it by name
    (``nst_core.styles.use_model_file`` decides the name and whether it is reused)."""
    from nst_core.styles import StyleNameTakenError, use_model_file

    try:
        name, imported = use_model_file(path)
    except StyleNameTakenError as exc:
        raise CommandError(
            str(exc),
            hint=f"import the file under another name: `nst styles import {path} --name NEW`, "
            "then use --style NEW",
        ) from None
    if imported:
        say(f"imported {path} as style {name!r} (see `nst styles`)")
    return name


def make_runner(args: argparse.Namespace, spec: StyleSpec) -> tuple[Runner, Callable[[], None]]:
    """A runner for ``args`` and the function that releases it."""
    if args.local:
        runner = LocalRunner(spec)
        return runner, runner.close
    client = connect(args)
    return DaemonRunner(client, spec), client.close


def stylize_targets(
    images: list[Path], output: str | None, label: str, style_images: list[Path]
) -> list[Task]:
    """One output per picture; refused before anything is written if an output would
    replace any input of the run (a picture or a painting), or two outputs coincide."""

    def default_name(src: Path) -> str:
        return f"{src.stem}-{label}.png"

    if output is None:
        tasks = [Task(src, src.with_name(default_name(src))) for src in images]
    else:
        out = Path(output).expanduser()
        as_dir = len(images) > 1 or out.is_dir() or output.endswith(("/", os.sep))
        if as_dir:
            out.mkdir(parents=True, exist_ok=True)
            tasks = [Task(src, out / default_name(src)) for src in images]
        else:
            tasks = [Task(images[0], out)]
    seen: dict[Path, Path] = {}
    for task in tasks:
        if not task.source.is_file():
            raise ImageError(f"{task.source}: no such file")
        output_format(task.target)
        key = task.target.resolve()
        if key in seen:
            raise CommandError(
                f"{seen[key]} and {task.source} would both be written to {task.target}",
                hint="give them different names or stylise them separately",
            )
        seen[key] = task.source
    refuse_input_clash([t.target for t in tasks], [*images, *style_images])
    return tasks


def refuse_input_clash(targets: list[Path], inputs: list[Path]) -> None:
    clash = input_clash(targets, inputs)
    if clash is not None:
        target, source = clash
        same = "is" if target.resolve() == source.resolve() else "is the same file as"
        raise CommandError(
            f"{target} {same} the input {source}: writing it would destroy that input; "
            "nothing was written",
            hint="choose another output name or folder with -o",
            exit_code=EXIT_USAGE,
        )
