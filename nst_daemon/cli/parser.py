"""The ``nst`` argument tables: every command, its options and its help text."""

from __future__ import annotations

import argparse
from pathlib import Path

from nst_daemon import __version__
from nst_daemon.cli.manage import (
    cmd_daemon,
    cmd_status,
    cmd_styles,
    cmd_styles_import,
    cmd_train,
    cmd_weights_fetch,
    cmd_weights_import,
    cmd_weights_show,
)
from nst_daemon.cli.pictures import cmd_batch, cmd_stylize

# --- argument types -------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


# --- parser ---------------------------------------------------------------------------------

FORMATTER = argparse.RawDescriptionHelpFormatter

STYLE_HELP = """\
--style takes a style name (see `nst styles`) or the path of a model file (.pth from
PyTorch's fast_neural_style example, or an nst .safetensors). The daemon never opens
files named in requests, so a model file is first imported into your styles (as `nst
styles import FILE` does, under the file's name; again with the same file is a no-op)
and then used by name, with or without --local (so only with a daemon on this machine)."""


SPEED_HELP = (
    "fast styles: which of the style's networks runs. best: the full network; fast: the "
    "lite network (quicker, a little less detail) where the style has one (`nst styles` "
    "marks them), else the full one; auto (default): lite on a CPU, full on a GPU"
)


def add_speed_option(group: argparse._ActionsContainer) -> None:
    """``--speed``, for every command that runs fast styles (``FastParams.speed``)."""
    from nst_client.params import SPEEDS

    group.add_argument("--speed", choices=SPEEDS, help=SPEED_HELP)


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
        type=fraction,
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
    add_speed_option(opts)
    opts.add_argument(
        "--iterations", type=positive_int, metavar="N", help="gatys: optimisation steps"
    )
    opts.add_argument(
        "--quality",
        choices=["draft", "balanced", "high"],
        help="gatys: preset of size and steps (default balanced)",
    )
    opts.add_argument(
        "--max-size",
        type=positive_int,
        metavar="PX",
        help="limit the long side while stylising; the result is scaled back to full size",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        formatter_class=FORMATTER,
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
        formatter_class=FORMATTER,
        help="stylise one or more pictures",
        description="Stylise pictures with a fast style or a painting.\n\n" + STYLE_HELP,
        epilog="""\
examples:
  nst stylize photo.jpg --style candy                  # writes photo-candy.png
  nst stylize photo.jpg --style udnie --strength 0.7 --preserve-colors -o soft.png
  nst stylize photo.jpg --style udnie --speed best     # the full network, also on a CPU
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
        formatter_class=FORMATTER,
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
        "--ray-actors",
        type=positive_int,
        metavar="N",
        help="actors (default: one per GPU of the cluster, else one per CPU)",
    )
    ray.add_argument(
        "--ray-batch-size",
        type=positive_int,
        metavar="N",
        help="pictures per task (default: 1 for gatys, up to 16 for fast)",
    )
    p.set_defaults(func=cmd_batch)

    from nst_daemon import video

    video.add_parser(sub, [daemon_opts], FORMATTER)

    p = sub.add_parser(
        "styles",
        parents=[daemon_opts],
        formatter_class=FORMATTER,
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
        formatter_class=FORMATTER,
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
        formatter_class=FORMATTER,
        help="what the daemon is doing (jobs, models, device)",
        description="Show the daemon's status. Does not start a daemon.",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "train",
        parents=[daemon_opts],
        formatter_class=FORMATTER,
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
    p.add_argument("--steps", type=positive_int, metavar="N", help="training steps (default 2000)")
    p.add_argument("--batch-size", type=positive_int, metavar="N")
    p.add_argument("--image-size", type=positive_int, metavar="PX", help="training crop size")
    p.add_argument("--style-weight", type=float, metavar="W")
    p.add_argument("--content-weight", type=float, metavar="W")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "daemon",
        formatter_class=FORMATTER,
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
        formatter_class=FORMATTER,
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
        "--if-missing",
        action="store_true",
        help="do nothing when the data dir already holds fetched or imported weights",
    )
    q.set_defaults(func=cmd_weights_fetch)
    q = weights_sub.add_parser("import", help="store a weights file you already have")
    q.add_argument("file", metavar="FILE", type=Path)
    q.add_argument("--arch", choices=["vgg16", "vgg19"], help="default: detected")
    q.set_defaults(func=cmd_weights_import)
    return parser
