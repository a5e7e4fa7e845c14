"""The ``nst`` command: stylise pictures, run batches, manage styles, weights and the daemon.

Every command that computes talks to the daemon (started on demand) unless ``--local``
runs it in this process. Only ``--local`` and the commands that touch local files
(``styles import``, ``weights``, ``daemon``) import torch, so a daemon round trip starts
fast. Every failure is one line on stderr, ``nst: error: ...``, and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst_core.atomic import remove_partials
from nst_core.errors import ImageError, NSTError, ParameterError
from nst_core.names import slug, style_name_problem
from nst_daemon import __version__, protocol
from nst_daemon.batch import (
    DaemonRunner,
    LocalRunner,
    Runner,
    StyleSpec,
    Task,
    input_clash,
    plan_batch,
    run_tasks,
)
from nst_daemon.imagefile import output_format, read_image
from nst_daemon.protocol import ProtocolError, default_endpoint

if TYPE_CHECKING:
    from nst_core.progress import Progress

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # `nst daemon status` when no daemon answers (as LSB init scripts do)
EXIT_INTERRUPTED = 130

# What to do about each stable error code; appended to the message on stderr.
HINTS = {
    "unknown_style": "list styles with `nst styles`, or add a model with `nst styles import FILE`",
    "weights_missing": "run `nst weights fetch`, or `nst weights import FILE` for a file you have",
    "bad_model": "use a .pth from PyTorch's fast_neural_style example or an nst .safetensors model",
    "out_of_memory": "try a smaller --max-size",
    "too_large": "try a smaller --max-size",
    "daemon_unavailable": "start it with `nst daemon start` (see its log), check --endpoint "
    "or NST_ENDPOINT, or run in-process with --local",
    "timeout": "check the daemon with `nst daemon status`; its log is in the data dir",
    "busy": "the daemon's queue is full; try again when `nst status` shows fewer jobs",
    "internal": "see the daemon's log (`nst daemon status` shows where)",
    "unsupported_version": "the daemon is another version of nst; restart it: "
    "`nst daemon stop && nst daemon start`",
}


class CommandError(Exception):
    """A user error the CLI reports as one line and an exit code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def _say(message: str) -> None:
    print(f"nst: {message}", file=sys.stderr, flush=True)


# --- argument types -------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


# --- parser ---------------------------------------------------------------------------------

_FORMATTER = argparse.RawDescriptionHelpFormatter

STYLE_HELP = """\
--style takes a style name (see `nst styles`) or the path of a model file (.pth from
PyTorch's fast_neural_style example, or an nst .safetensors). The daemon never opens
files named in requests, so a model file is first imported into your styles (as `nst
styles import FILE` does, under the file's name; again with the same file is a no-op)
and then used by name, with or without --local (so only with a daemon on this machine)."""


def _daemon_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("daemon")
    group.add_argument(
        "--endpoint",
        metavar="EP",
        help="daemon endpoint (default: $NST_ENDPOINT or tcp://127.0.0.1:47811); a local "
        "daemon is started when none answers",
    )
    group.add_argument(
        "--local", action="store_true", help="run in this process, without the daemon"
    )
    return common


def _style_options(*, image_level: bool) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    style = common.add_argument_group("style (one of --style or --style-image)")
    style.add_argument("--style", metavar="NAME|FILE", help="fast style: a name or a model file")
    style.add_argument(
        "--style-image",
        metavar="FILE",
        action="append",
        default=[],
        help="painting to imitate (Gatys method); repeat to mix several",
    )
    opts = common.add_argument_group("rendering")
    opts.add_argument(
        "--method",
        choices=["fast", "gatys"],
        help="fast: feed-forward network (a second); gatys: optimisation that matches any "
        "painting (minutes on a CPU). Default: fast with --style, gatys with --style-image",
    )
    opts.add_argument(
        "--strength",
        type=_fraction,
        metavar="S",
        help="blend with the original, 0..1 (default 1: fully stylised)",
    )
    opts.add_argument(
        "--preserve-colors",
        nargs="?",
        const="luminance",
        choices=["luminance", "histogram"],
        help="keep the photo's colours: luminance (the default when given) or histogram",
    )
    opts.add_argument(
        "--iterations", type=_positive_int, metavar="N", help="gatys: optimisation steps"
    )
    opts.add_argument(
        "--quality",
        choices=["draft", "balanced", "high"],
        help="gatys: preset of size and steps (default balanced)",
    )
    opts.add_argument(
        "--max-size",
        type=_positive_int,
        metavar="PX",
        help="limit the long side while stylising; the result is scaled back to full size",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        formatter_class=_FORMATTER,
        description="Neural style transfer: repaint pictures in the style of a painting.",
        epilog="""\
examples:
  nst stylize photo.jpg --style the-scream           # writes photo-the-scream.png
  nst stylize a.jpg b.jpg --style great-wave -o out/
  nst stylize photo.jpg --style-image painting.jpg --quality draft
  nst batch photos/ -o stylised/ --style udnie       # resumable
  nst styles
  nst daemon status

Run `nst COMMAND --help` for the options of a command. Exit codes: 0 success,
1 failure, 2 bad usage, 3 daemon not running (`nst daemon status`), 130 interrupted.""",
    )
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    daemon_opts = _daemon_options()

    p = sub.add_parser(
        "stylize",
        aliases=["stylise"],
        parents=[_style_options(image_level=True), daemon_opts],
        formatter_class=_FORMATTER,
        help="stylise one or more pictures",
        description="Stylise pictures with a fast style or a painting.\n\n" + STYLE_HELP,
        epilog="""\
examples:
  nst stylize photo.jpg --style candy                  # writes photo-candy.png
  nst stylize photo.jpg --style udnie --strength 0.7 --preserve-colors -o soft.png
  nst stylize a.jpg b.jpg --style ./mosaic.pth -o out/ # imports mosaic.pth, then uses it
  nst stylize photo.jpg --style-image starry.jpg --quality draft --max-size 512""",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="pictures to stylise")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (one picture) or folder (several, or a folder that exists); "
        "default: <name>-<style>.png next to each picture. An existing file is replaced, "
        "but never one of the run's inputs (pictures or paintings): such a run is refused "
        "before anything is written",
    )
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser(
        "batch",
        parents=[_style_options(image_level=True), daemon_opts],
        formatter_class=_FORMATTER,
        help="stylise every picture of a folder (resumable)",
        description="Stylise every picture in INPUT_DIR into OUTPUT_DIR, under the same "
        "file names.\n\nResumable: pictures whose output exists are skipped, and each "
        "output is written to a temporary file and renamed, so an interrupted run leaves "
        "no half-written picture; run the same command again to finish.\n\n" + STYLE_HELP,
        epilog="""\
examples:
  nst batch holiday/ -o holiday-candy/ --style candy
  nst batch scans/ -o painted/ --style-image monet.jpg --quality draft --max-size 800
  nst batch frames/ -o painted/ --style udnie --ray auto   # on a Ray cluster (docs/cluster.md)""",
    )
    # strings, not Paths: with --ray they may be URIs (Path would fold s3://b into s3:/b)
    p.add_argument("input_dir", metavar="INPUT_DIR")
    p.add_argument("-o", "--output", metavar="OUTPUT_DIR", required=True)
    ray = p.add_argument_group("Ray cluster (needs the cluster extra: pip install '.[cluster]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray: no ADDRESS starts a local Ray, `auto` joins the cluster of this "
        "machine, or give ray://HOST:PORT or HOST:PORT. Folders may then also be URIs "
        "pyarrow understands (s3://...); see docs/cluster.md",
    )
    ray.add_argument(
        "--ray-actors", type=_positive_int, metavar="N",
        help="actors (default: one per GPU of the cluster, else one per CPU)",
    )
    ray.add_argument(
        "--ray-batch-size", type=_positive_int, metavar="N",
        help="pictures per task (default: 1 for gatys, up to 16 for fast)",
    )
    p.set_defaults(func=cmd_batch)

    from nst_daemon import video

    video.add_parser(sub, [daemon_opts], _FORMATTER)

    p = sub.add_parser(
        "styles",
        parents=[daemon_opts],
        formatter_class=_FORMATTER,
        help="list styles, or import a style model",
        description="List the styles the daemon offers (bundled and yours), or import one.",
        epilog="""\
examples:
  nst styles
  nst styles import candy.pth --name candy    # a model from PyTorch's example""",
    )
    p.set_defaults(func=cmd_styles)
    styles_sub = p.add_subparsers(dest="styles_command", metavar="ACTION")
    q = styles_sub.add_parser(
        "import",
        formatter_class=_FORMATTER,
        help="import a fast-style model file into your styles",
        description="Copy a fast-style model into your styles (in the data dir, $NST_HOME), "
        "after checking that it loads. Accepts a .pth from PyTorch's fast_neural_style "
        "example or an nst .safetensors.",
        epilog="example:\n  nst styles import ~/Downloads/mosaic.pth --name mosaic",
    )
    q.add_argument("file", metavar="FILE", type=Path)
    q.add_argument("--name", help="style name (default: the file name without extension)")
    q.set_defaults(func=cmd_styles_import)

    p = sub.add_parser(
        "status",
        parents=[daemon_opts],
        formatter_class=_FORMATTER,
        help="what the daemon is doing (jobs, models, device)",
        description="Show the daemon's status. Does not start a daemon.",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "train",
        parents=[daemon_opts],
        formatter_class=_FORMATTER,
        help="train a fast style from a painting",
        description="Train a fast-style network (Johnson et al.) that imitates STYLE_IMAGE, "
        "on the photos in --data; the result becomes a style named --name.",
        epilog="""\
examples:
  nst train monet.jpg --data photos/ --name monet
  nst train monet.jpg --data photos/ --name monet-quick --steps 2000 --local""",
    )
    p.add_argument("style_image", metavar="STYLE_IMAGE", type=Path)
    p.add_argument("--data", metavar="DIR", type=Path, required=True, help="training photos")
    p.add_argument(
        "--name",
        required=True,
        help="name of the new style (letters, digits, '_', '-', '.'); the name of a bundled "
        "style or of one of your styles is refused",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace your own style of the same name (a bundled style is never replaced)",
    )
    p.add_argument(
        "--steps", type=_positive_int, metavar="N", help="training steps (default 2000)"
    )
    p.add_argument("--batch-size", type=_positive_int, metavar="N")
    p.add_argument("--image-size", type=_positive_int, metavar="PX", help="training crop size")
    p.add_argument("--style-weight", type=float, metavar="W")
    p.add_argument("--content-weight", type=float, metavar="W")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "daemon",
        formatter_class=_FORMATTER,
        help="start, stop or inspect the daemon",
        description="Manage the daemon that keeps the networks loaded.",
        epilog="""\
actions:
  start    start in the background and wait until it answers
  stop     ask it to stop (running jobs are cancelled)
  status   is it running? (exit code 3 when not)
  run      run in the foreground (for systemd or to watch its log)

start and run pass other options to the daemon: --device cuda|cpu|mps,
--max-pixels N, --max-message-mb N, --vgg-weights FILE, --curve-secret FILE,
--curve-clients DIR, --client-silence S, --max-queued-per-client N,
--max-queued-mb-per-client MB, --max-queued-mb MB, --max-connections N,
--max-receiving-mb MB, --verbose
(see `python -m nst_daemon.server --help`). Example:
  nst daemon start --device cuda:1 --endpoint tcp://127.0.0.1:47900""",
    )
    p.add_argument("action", choices=["start", "stop", "status", "run"])
    p.add_argument(
        "--endpoint", metavar="EP", help="default: $NST_ENDPOINT or tcp://127.0.0.1:47811"
    )
    p.set_defaults(func=cmd_daemon, server_args=[])

    p = sub.add_parser(
        "weights",
        formatter_class=_FORMATTER,
        help="which VGG weights the Gatys method uses; fetch or import others",
        description="VGG weights for the Gatys method and training (fast styles do not need "
        "them). The package bundles VGG16 (the Oxford weights, fp16); weights you fetch or "
        "import into the data dir take precedence over the bundled ones, and --vgg-weights "
        "FILE over both.",
        epilog="""\
examples:
  nst weights show                   # which file is used, and why
  nst weights fetch                  # torchvision's VGG16, sha256-checked
  nst weights import vgg16-397923af.pth""",
    )
    weights_sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    q = weights_sub.add_parser("show", help="which weights file is used, and the others found")
    q.add_argument("--arch", choices=["vgg16", "vgg19"], default="vgg16")
    q.set_defaults(func=cmd_weights_show)
    q = weights_sub.add_parser("fetch", help="download torchvision's official weights")
    q.add_argument("--arch", choices=["vgg16", "vgg19"], default="vgg16")
    q.add_argument(
        "--if-missing", action="store_true",
        help="do nothing when the data dir already holds fetched or imported weights",
    )
    q.set_defaults(func=cmd_weights_fetch)
    q = weights_sub.add_parser("import", help="store a weights file you already have")
    q.add_argument("file", metavar="FILE", type=Path)
    q.add_argument("--arch", choices=["vgg16", "vgg19"], help="default: detected")
    q.set_defaults(func=cmd_weights_import)
    return parser


# --- helpers --------------------------------------------------------------------------------


def _endpoint(args: argparse.Namespace) -> str:
    return args.endpoint or default_endpoint()


def _connect(args: argparse.Namespace, *, autostart: bool = True) -> Any:
    from nst_daemon.client import Client

    return Client(_endpoint(args), autostart=autostart, on_status=_say)


def _looks_like_path(style: str) -> bool:
    return os.sep in style or "/" in style or Path(style).suffix in (".pth", ".safetensors", ".pt")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "styled"


def _check_style_args(args: argparse.Namespace) -> None:
    if bool(args.style) == bool(args.style_image):
        raise CommandError(
            "give either --style NAME|FILE or --style-image FILE",
            hint="see `nst styles` for names",
            exit_code=EXIT_USAGE,
        )


def _style_label(args: argparse.Namespace) -> str:
    """A short name of the style for output file names."""
    if args.style:
        label = Path(args.style).stem if _looks_like_path(args.style) else args.style
    else:
        label = "+".join(Path(p).stem for p in args.style_image)
    return _slug(label)


def _style_spec(args: argparse.Namespace) -> StyleSpec:
    """The part of the request every picture shares."""
    style_images = [read_image(p) for p in args.style_image]
    method = args.method or ("gatys" if style_images else "fast")
    params = {
        key: value
        for key, value in (
            ("strength", args.strength),
            ("preserve_colors", args.preserve_colors),
            ("iterations", args.iterations),
            ("quality", args.quality),
            ("max_size", args.max_size),
        )
        if value is not None
    }
    style = args.style
    if style and _looks_like_path(style):
        path = Path(style).expanduser()
        if not path.is_file():
            raise CommandError(
                f"style model file not found: {path}",
                hint="give a style name (see `nst styles`) or an existing model file",
            )
        if not args.local:
            from nst_daemon.client import is_local_endpoint

            if not is_local_endpoint(_endpoint(args)):
                raise CommandError(
                    f"a model file cannot be sent to the daemon at {_endpoint(args)}",
                    hint="import it on the daemon's machine with `nst styles import FILE`, "
                    "then use --style NAME",
                )
        style = _import_style_file(path)
    return StyleSpec(style, style_images, method, params)


def _import_style_file(path: Path) -> str:
    """Import a model file into the user styles so the daemon can load it by name.

    The name is the file's stem; when a style of that name exists already it is used if
    it holds the same network (a second run with the same file), refused otherwise.
    """
    from nst_core.errors import StyleNotFoundError
    from nst_core.styles import find_style, import_style

    name = slug(path.stem)
    try:
        existing = find_style(name)
    except StyleNotFoundError:
        import_style(path, name)
        _say(f"imported {path} as style {name!r} (see `nst styles`)")
        return name
    if not _same_network(existing, path):
        raise CommandError(
            f"a different style called {name!r} exists already ({existing})",
            hint=f"import the file under another name: `nst styles import {path} --name NEW`, "
            "then use --style NEW",
        )
    return name


def _same_network(a: Path, b: Path) -> bool:
    """Whether two model files hold the same weights (up to fp16 storage rounding)."""
    from nst_core.transformer_net import load_style_model

    sa, sb = (load_style_model(p).net.state_dict() for p in (a, b))
    return sa.keys() == sb.keys() and all(
        sa[k].half().equal(sb[k].half()) for k in sa
    )


def _runner(args: argparse.Namespace, spec: StyleSpec) -> tuple[Runner, Callable[[], None]]:
    """A runner for ``args`` and the function that releases it."""
    if args.local:
        runner = LocalRunner(spec)
        return runner, runner.close
    client = _connect(args)
    return DaemonRunner(client, spec), client.close


class _StepBar:
    """A tqdm bar for the steps of one job, created on its first progress event."""

    def __init__(self, desc: str, position: int = 0, leave: bool = False) -> None:
        self.desc, self.position, self.leave = desc, position, leave
        self.bar: Any = None

    def __call__(self, event: dict[str, Any] | Progress) -> None:
        if not isinstance(event, dict):  # in-process: an nst_core Progress
            event = vars(event)
        total = int(event.get("total") or 0)
        if total <= 1:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=self.desc,
                unit="step",
                position=self.position,
                leave=self.leave,
                disable=None,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        if total != self.bar.total:
            self.bar.reset(total)  # a new stage (e.g. the next scale of a Gatys run)
        self.bar.update(int(event.get("step") or 0) - self.bar.n)
        losses = event.get("losses") or {}
        stage = event.get("stage") or ""
        post = {k: f"{v:.3g}" for k, v in losses.items() if isinstance(v, int | float)}
        if stage:
            post = {"stage": stage, **post}
        eta = event.get("eta_s")
        if eta is not None:  # the engine's estimate knows that later steps cost more
            self.bar.bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
            minutes, seconds = divmod(round(eta), 60)
            post["left"] = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
        self.bar.set_postfix(post)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _stylize_targets(
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
    _refuse_input_clash([t.target for t in tasks], [*images, *style_images])
    return tasks


def _refuse_input_clash(targets: list[Path], inputs: list[Path]) -> None:
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


# --- commands -------------------------------------------------------------------------------


def cmd_stylize(args: argparse.Namespace) -> int:
    _check_style_args(args)
    images = [Path(p).expanduser() for p in args.images]
    style_images = [Path(p).expanduser() for p in args.style_image]
    tasks = _stylize_targets(images, args.output, _style_label(args), style_images)
    spec = _style_spec(args)
    runner, close = _runner(args, spec)
    try:
        for task in tasks:
            bar = _StepBar(task.source.name)
            try:
                for done in run_tasks([task], runner, bar):
                    bar.close()
                    print(done.target, flush=True)
            finally:
                bar.close()
    finally:
        close()
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    if args.ray is not None:
        from nst_daemon.cluster import cmd_batch_ray  # imports Ray, only here

        return cmd_batch_ray(args)
    input_dir = Path(args.input_dir).expanduser()
    output_dir = Path(args.output).expanduser()
    _check_style_args(args)
    if not input_dir.is_dir():
        raise CommandError(f"{input_dir}: not a folder", hint="give the folder of pictures")
    if input_dir.resolve() == output_dir.resolve():
        raise CommandError("the output folder must differ from the input folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(output_dir)
    todo, done = plan_batch(input_dir, output_dir)
    tasks = todo + done
    style_images = [Path(p).expanduser() for p in args.style_image]
    _refuse_input_clash([t.target for t in tasks], [t.source for t in tasks] + style_images)
    if not todo and not done:
        raise CommandError(f"{input_dir}: no pictures (.png, .jpg, .tif, .webp, .bmp) found")
    if done:
        _say(f"{len(done)} of {len(done) + len(todo)} already done, skipped")
    if not todo:
        return 0
    spec = _style_spec(args)
    runner, close = _runner(args, spec)
    from tqdm import tqdm

    bar = tqdm(
        total=len(done) + len(todo),
        initial=len(done),
        desc="batch",
        unit="img",
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    step_bar = _StepBar("", position=1)
    failed: list[Task] = []

    def on_failure(task: Task, exc: Exception) -> None:
        failed.append(task)
        message = getattr(exc, "message", None) or str(exc)
        tqdm.write(f"nst: error: {task.source.name}: {message} (skipped)", file=sys.stderr)

    count = 0
    try:
        for _ in run_tasks(todo, runner, step_bar, on_failure):
            step_bar.close()
            count += 1
            bar.update(1)
    finally:
        step_bar.close()
        bar.close()
        close()
    _say(f"{count} stylised into {output_dir}")
    if failed:
        raise CommandError(
            f"{len(failed)} picture(s) could not be stylised: "
            + ", ".join(t.source.name for t in failed[:5])
            + (" ..." if len(failed) > 5 else ""),
            hint="see the messages above",
        )
    return 0


def cmd_styles(args: argparse.Namespace) -> int:
    if args.local:
        from nst_core.styles import list_styles

        rows = [_style_row(vars(info)) for info in list_styles()]
    else:
        with _connect(args) as client:
            rows = [_style_row(s) for s in client.styles()]
    if not rows:
        _say("no styles; add one with `nst styles import FILE`")
        return 0
    headers = ("NAME", "TITLE", "ARTIST", "YEAR", "SOURCE")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _style_row(info: dict[str, Any]) -> tuple[str, ...]:
    def text(key: str) -> str:
        value = info.get(key)
        return "" if value is None else str(value)

    return (text("name"), text("title"), text("artist"), text("year"), text("source"))


def cmd_styles_import(args: argparse.Namespace) -> int:
    from nst_core.styles import import_style

    path = import_style(args.file.expanduser(), name=args.name)
    print(f"imported {args.file} as style {path.stem!r} ({path})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.local:
        raise CommandError(
            "`nst status` reports on the daemon; --local has no status", exit_code=EXIT_USAGE
        )
    with _connect(args, autostart=False) as client:
        status = client.status()
    print(format_status(_endpoint(args), status))
    return 0


def _job_line(job: dict[str, Any]) -> str:
    text = f"{job.get('job_id', '?')} {job.get('method', '')} {job.get('state', '')}"
    if job.get("total"):
        text += f" {job.get('step', 0)}/{job['total']}"
    if job.get("stage"):
        text += f" ({job['stage']})"
    return text


def format_status(endpoint: str, status: dict[str, Any]) -> str:
    """The daemon's ``status`` reply as a few readable lines."""
    uptime = float(status.get("uptime_s") or 0)
    models = status.get("models") or {}
    memory = status.get("memory") or {}
    lines = [
        f"daemon   {endpoint} (pid {status.get('pid', '?')}, up {uptime / 60:.1f} min)",
        f"device   {status.get('device', '?')}"
        + (
            f", {memory['allocated'] / 2**20:.0f} MiB of {memory['total'] / 2**20:.0f} MiB used"
            if memory.get("total")
            else ""
        ),
        f"models   VGG {'loaded' if models.get('vgg') else 'not loaded'}; fast styles: "
        + (", ".join(models.get("fast") or []) or "none loaded"),
        "running  " + ("; ".join(_job_line(j) for j in status.get("running") or []) or "idle"),
        "queued   " + ("; ".join(_job_line(j) for j in status.get("queue") or []) or "none"),
        f"clients  {status.get('clients', 0)}",
    ]
    if status.get("vgg_weights"):  # older daemons do not say
        lines.insert(3, f"weights  {format_weights(status['vgg_weights'])}")
    return "\n".join(lines)


def format_weights(info: dict[str, Any]) -> str:
    """A ``vgg_weights`` entry of hello/status (``nst_core.weights.weights_info``) in words."""
    source = info.get("source", "?")
    if source == "missing":
        return f"missing ({info.get('error') or 'no VGG weights found'})"
    if source == "bundled":
        return f"bundled {info.get('name', '')}".rstrip()
    label = {"data_dir": "imported/fetched", "explicit": "--vgg-weights",
             "torchvision_cache": "torchvision's cache"}.get(source, source)
    return f"{label} {info.get('path', '')}".rstrip()


def cmd_train(args: argparse.Namespace) -> int:
    problem = style_name_problem(args.name)
    if problem is not None:
        raise CommandError(f"style name {args.name!r} {problem}", exit_code=EXIT_USAGE)
    data: Path = args.data.expanduser()
    if not data.is_dir():
        raise CommandError(f"{data}: not a folder", hint="--data takes a folder of photos")
    options = {
        "dataset": str(data.resolve()),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "style_weight": args.style_weight,
        "content_weight": args.content_weight,
    }
    params = {k: v for k, v in options.items() if v is not None}
    image = read_image(args.style_image.expanduser())
    bar = _StepBar(f"training {args.name}", leave=True)
    result: dict[str, Any] = {}
    try:
        if args.local:
            from nst_daemon.jobs import execute_train
            from nst_daemon.models import Models

            msg = protocol.make_request(
                "train", style_image=image.to_wire(), name=args.name, params=params,
                overwrite=args.overwrite or None,
            )
            result = execute_train(protocol.parse_train(msg), Models(), bar)
        else:
            with _connect(args) as client:
                events = client.train(
                    image, name=args.name, params=params, overwrite=args.overwrite
                )
                with contextlib.closing(events):  # leaving early (Ctrl-C) cancels the job
                    for event in events:
                        if event.get("type") == "progress":
                            bar(event)
                        elif event.get("type") == "result":
                            result = event
    finally:
        bar.close()
    print(f"trained style {args.name!r} ({result.get('path', '')}); use --style {args.name}")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from nst_daemon import lifecycle

    endpoint = _endpoint(args)
    if args.action == "run":
        from nst_daemon import server

        return server.main(["--endpoint", endpoint, *args.server_args])
    if args.action == "start":
        _say(f"starting daemon at {endpoint}…")
        try:
            pid = lifecycle.start(endpoint, args.server_args)
        except (lifecycle.DaemonStartError, lifecycle.DaemonRunning) as exc:
            raise CommandError(
                str(exc), hint=f"its log: {lifecycle.state_file(endpoint, 'log')}"
            ) from None
        print(f"daemon running at {endpoint} (pid {pid})")
        return 0
    if args.server_args:
        raise CommandError(
            f"unrecognized arguments: {' '.join(args.server_args)}", exit_code=EXIT_USAGE
        )
    if args.action == "stop":
        stopped = lifecycle.stop(endpoint)
        print(f"daemon at {endpoint} stopped" if stopped else f"no daemon running at {endpoint}")
        return 0
    pid = lifecycle.running_pid(endpoint)
    info = lifecycle.probe(endpoint)
    if info is None:
        if pid is None:
            print(f"not running ({endpoint})")
            return EXIT_NOT_RUNNING
        raise CommandError(
            f"the daemon (pid {pid}) holds {endpoint} but does not answer",
            hint=f"see {lifecycle.state_file(endpoint, 'log')}, or `nst daemon stop`",
        )
    print(
        f"running at {endpoint} (pid {info.get('pid', pid)}), nst {info.get('version', '?')}, "
        f"torch {info.get('torch', '?')}, device {info.get('device', '?')}"
    )
    if info.get("vgg_weights"):
        print(f"VGG weights: {format_weights(info['vgg_weights'])}")
    print(f"log: {lifecycle.state_file(endpoint, 'log')}")
    return 0


def cmd_weights_show(args: argparse.Namespace) -> int:
    from nst_core.weights import (
        SOURCES,
        bundled_path,
        stored_path,
        torchvision_cache_path,
        weights_info,
    )

    info = weights_info(args.arch)
    print(f"{args.arch} weights in use: {format_weights(info)}")
    if info["source"] != "missing":
        print(f"  ({SOURCES[info['source']]})")
    print("looked at, in this order (--vgg-weights FILE comes first when given):")
    for source, path in (("data_dir", stored_path(args.arch)),
                         ("bundled", bundled_path(args.arch)),
                         ("torchvision_cache", torchvision_cache_path(args.arch))):
        found = "present" if path is not None and path.is_file() else "absent"
        print(f"  {source:<18} {found:<8} {path or '(none for ' + args.arch + ')'}")
    return 0 if info["source"] != "missing" else 1


_RESTART_HINT = (
    "they take precedence over the bundled weights; a running daemon uses them "
    "after `nst daemon stop` (clients start it again)"
)


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from nst_core.weights import fetch_weights, stored_path

    if args.if_missing and stored_path(args.arch).is_file():
        print(f"{args.arch} weights already in the data dir: {stored_path(args.arch)}")
        return 0
    bar = _ByteBar(f"{args.arch} weights")
    try:
        path = fetch_weights(args.arch, progress=bar)
    finally:
        bar.close()
    print(f"stored {args.arch} weights in {path}; {_RESTART_HINT}")
    return 0


class _ByteBar:
    """tqdm bar for a download reported as ``Progress(step=bytes, total=bytes)``."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def __call__(self, progress: Any) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=progress.total or None,
                desc=self.desc,
                unit="B",
                unit_scale=True,
                disable=None,
                file=sys.stderr,
            )
        self.bar.update(progress.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_weights_import(args: argparse.Namespace) -> int:
    from nst_core.weights import import_weights

    path = import_weights(args.file, args.arch)
    print(f"stored weights in {path}; {_RESTART_HINT}")
    return 0


# --- entry point ----------------------------------------------------------------------------


def _report(message: str, hint: str | None) -> None:
    message = " ".join(str(message).split()) or "failed"
    if hint and "`nst " not in message:  # a message naming a command says what to do already
        message = f"{message.rstrip('.')} ({hint})"
    print(f"nst: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "daemon" or args.action not in ("start", "run"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.server_args = extra
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        _report(str(exc), exc.hint)
        return exc.exit_code
    except ParameterError as exc:
        _report(str(exc), None)
        return EXIT_USAGE
    except ProtocolError as exc:  # --local: the request checks the daemon would apply
        _report(exc.message, HINTS.get(exc.code))
        return EXIT_USAGE if exc.code in ("bad_parameter", "bad_request") else EXIT_FAILURE
    except NSTError as exc:
        _report(str(exc), HINTS.get(exc.code))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        _report("out of memory", HINTS["out_of_memory"])
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a trace
        from nst_daemon.client import DaemonError

        if isinstance(exc, DaemonError):
            _report(exc.message, HINTS.get(exc.code))
            return EXIT_USAGE if exc.code in ("bad_parameter", "bad_request") else EXIT_FAILURE
        if isinstance(exc, OSError):
            _report(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), None)
            return EXIT_FAILURE
        if os.environ.get("NST_DEBUG"):
            traceback.print_exc()
        _report(
            f"internal error: {type(exc).__name__}: {exc}",
            "please report it; set NST_DEBUG=1 to see the traceback",
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
