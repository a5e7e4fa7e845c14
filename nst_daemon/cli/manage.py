"""The commands that manage rather than stylise: styles, status, train, daemon, weights."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from nst_client.names import style_name_problem
from nst_client.params import TrainParams
from nst_client.protocol import Limits, Progress, Result, TrainRequest
from nst_client.text import status_report, weights_text
from nst_daemon.cli.errors import EXIT_NOT_RUNNING, EXIT_USAGE, CommandError, say
from nst_daemon.cli.options import connect, endpoint_of
from nst_daemon.cli.render import STYLE_HEADERS, ByteBar, StepBar, style_row
from nst_daemon.imagefile import read_image


def cmd_styles(args: argparse.Namespace) -> int:
    if args.local:
        from nst_core.styles import list_styles

        rows = [style_row(vars(info)) for info in list_styles()]
    else:
        with connect(args) as client:
            rows = [style_row(vars(s)) for s in client.styles()]
    if not rows:
        say("no styles; add one with `nst styles import FILE`")
        return 0
    headers = STYLE_HEADERS
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


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
    with connect(args, autostart=False) as client:
        status = client.status()
    print(status_report(endpoint_of(args), status))
    return 0


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
    params = TrainParams(**{k: v for k, v in options.items() if v is not None})
    image = read_image(args.style_image.expanduser())
    request = TrainRequest(args.name, image, params, args.overwrite)
    bar = StepBar(f"training {args.name}", leave=True)
    path: str | None = None
    try:
        if args.local:
            from nst_daemon.execute import execute_train
            from nst_daemon.models import Models

            path = execute_train(request.check_limits(Limits()), Models(), bar)["path"]
        else:
            with connect(args) as client:
                events = client.run(request)
                with contextlib.closing(events):  # leaving early (Ctrl-C) cancels the job
                    for event in events:
                        if isinstance(event, Progress):
                            bar(event)
                        elif isinstance(event, Result):
                            path = event.path
    finally:
        bar.close()
    print(f"trained style {args.name!r} ({path or ''}); use --style {args.name}")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from nst_daemon import lifecycle

    endpoint = endpoint_of(args)
    if args.action == "run":
        from nst_daemon import server

        return server.main(["--endpoint", endpoint, *args.server_args])
    if args.action == "start":
        say(f"starting daemon at {endpoint}…")
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
        f"running at {endpoint} (pid {info.pid or pid}), nst {info.version or '?'}, "
        f"torch {info.torch or '?'}, device {info.device or '?'}"
    )
    if info.vgg_weights:
        print(f"VGG weights: {weights_text(info.vgg_weights)}")
    print(f"log: {lifecycle.state_file(endpoint, 'log')}")
    return 0


#: The options and commands behind each ``nst_core.weights.SOURCES`` entry.
SOURCE_OPTIONS = {"explicit": "--vgg-weights", "data_dir": "nst weights import|fetch"}


def cmd_weights_show(args: argparse.Namespace) -> int:
    from nst_core.weights import (
        SOURCES,
        bundled_path,
        stored_path,
        torchvision_cache_path,
    )
    from nst_daemon.advice import weights_status

    info = weights_status(args.arch)
    print(f"{args.arch} weights in use: {weights_text(info)}")
    if info["source"] != "missing":
        how = SOURCE_OPTIONS.get(info["source"])
        print(f"  ({SOURCES[info['source']]}{f' ({how})' if how else ''})")
    print("looked at, in this order (--vgg-weights FILE comes first when given):")
    for source, path in (
        ("data_dir", stored_path(args.arch)),
        ("bundled", bundled_path(args.arch)),
        ("torchvision_cache", torchvision_cache_path(args.arch)),
    ):
        found = "present" if path is not None and path.is_file() else "absent"
        print(f"  {source:<18} {found:<8} {path or '(none for ' + args.arch + ')'}")
    return 0 if info["source"] != "missing" else 1


RESTART_HINT = (
    "they take precedence over the bundled weights; a running daemon uses them "
    "after `nst daemon stop` (clients start it again)"
)


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from nst_core.weights import fetch_weights, stored_path

    if args.if_missing and stored_path(args.arch).is_file():
        print(f"{args.arch} weights already in the data dir: {stored_path(args.arch)}")
        return 0
    bar = ByteBar(f"{args.arch} weights")
    try:
        path = fetch_weights(args.arch, progress=bar)
    finally:
        bar.close()
    print(f"stored {args.arch} weights in {path}; {RESTART_HINT}")
    return 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from nst_core.weights import import_weights

    path = import_weights(args.file, args.arch)
    print(f"stored weights in {path}; {RESTART_HINT}")
    return 0
