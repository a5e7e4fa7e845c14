"""``nst batch --ray``: the resumable batch on a Ray cluster (``nst_daemon.cluster`` runs it;
Ray is imported only when the command runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nst_core.pillow_modes import IMAGE_EXTENSIONS_TEXT
from nst_daemon.cli.errors import EXIT_USAGE, CommandError, say
from nst_daemon.cli.options import check_style_args, refuse_input_clash, style_spec
from nst_daemon.cluster import import_ray, make_plan, run


def cmd_batch_ray(args: argparse.Namespace) -> int:
    """``nst batch INPUT_DIR -o OUTPUT_DIR ... --ray [ADDRESS]`` (see ``nst batch --help``)."""
    check_style_args(args)
    if args.local:
        raise CommandError(
            "--local and --ray exclude each other", hint="drop one", exit_code=EXIT_USAGE
        )
    import_ray()  # the clear error first, before anything is written
    source_text, output_text = str(args.input_dir), str(args.output)
    job = make_plan(source_text, output_text)
    tasks = job.todo + job.done
    if job.source.local and job.output.local:
        style_images = [Path(p).expanduser() for p in args.style_image]
        refuse_input_clash([t.target for t in tasks], [t.source for t in tasks] + style_images)
    if not tasks:
        raise CommandError(f"{source_text}: no pictures ({IMAGE_EXTENSIONS_TEXT}) found")
    if job.done:
        say(f"{len(job.done)} of {len(tasks)} already done, skipped")
    if not job.todo:
        return 0
    spec = style_spec(args)
    from tqdm import tqdm

    address = None if args.ray == "local" else args.ray
    say(f"starting {'a local Ray' if address is None else 'on Ray at ' + address}")
    bar = tqdm(
        total=len(tasks),
        initial=len(job.done),
        desc="batch (ray)",
        unit="img",
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    bar.unpause()

    def on_row(row: dict[str, Any]) -> None:
        if row["status"] == "failed":
            tqdm.write(
                f"nst: error: {Path(row['source']).name}: {row['error']} (skipped)",
                file=sys.stderr,
            )
        bar.update(1)

    try:
        report = run(
            job,
            spec,
            address=address,
            actors=args.ray_actors,
            batch_size=args.ray_batch_size,
            on_row=on_row,
        )
    finally:
        bar.close()
    where = f"{len(report.nodes)} node(s), {report.actors} actor(s)"
    say(f"{len(report.stylised) + len(report.skipped)} stylised into {output_text} ({where})")
    if report.failed:
        names = [Path(s).name for s, _ in report.failed]
        raise CommandError(
            f"{len(names)} picture(s) could not be stylised: "
            + ", ".join(names[:5])
            + (" ..." if len(names) > 5 else ""),
            hint="see the messages above",
        )
    return 0
