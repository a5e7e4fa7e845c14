"""``nst stylize`` and ``nst batch``: pictures in, stylised pictures out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nst_core.atomic import remove_partials
from nst_core.pillow_modes import IMAGE_EXTENSIONS_TEXT
from nst_daemon.batch import Task, plan_batch, run_tasks
from nst_daemon.cli.errors import CommandError, say
from nst_daemon.cli.options import (
    check_style_args,
    make_runner,
    refuse_input_clash,
    style_label,
    style_spec,
    stylize_targets,
)
from nst_daemon.cli.render import StepBar


def cmd_stylize(args: argparse.Namespace) -> int:
    check_style_args(args)
    images = [Path(p).expanduser() for p in args.images]
    style_images = [Path(p).expanduser() for p in args.style_image]
    tasks = stylize_targets(images, args.output, style_label(args), style_images)
    spec = style_spec(args)
    runner, close = make_runner(args, spec)
    try:
        for task in tasks:
            bar = StepBar(task.source.name)
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
        from nst_daemon.cli.ray_batch import cmd_batch_ray  # imports Ray, only here

        return cmd_batch_ray(args)
    input_dir = Path(args.input_dir).expanduser()
    output_dir = Path(args.output).expanduser()
    check_style_args(args)
    if not input_dir.is_dir():
        raise CommandError(f"{input_dir}: not a folder", hint="give the folder of pictures")
    if input_dir.resolve() == output_dir.resolve():
        raise CommandError("the output folder must differ from the input folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(output_dir)
    todo, done = plan_batch(input_dir, output_dir)
    tasks = todo + done
    style_images = [Path(p).expanduser() for p in args.style_image]
    refuse_input_clash([t.target for t in tasks], [t.source for t in tasks] + style_images)
    if not todo and not done:
        raise CommandError(f"{input_dir}: no pictures ({IMAGE_EXTENSIONS_TEXT}) found")
    if done:
        say(f"{len(done)} of {len(done) + len(todo)} already done, skipped")
    if not todo:
        return 0
    spec = style_spec(args)
    runner, close = make_runner(args, spec)
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
    step_bar = StepBar("", position=1)
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
    say(f"{count} stylised into {output_dir}")
    if failed:
        raise CommandError(
            f"{len(failed)} picture(s) could not be stylised: "
            + ", ".join(t.source.name for t in failed[:5])
            + (" ..." if len(failed) > 5 else ""),
            hint="see the messages above",
        )
    return 0
