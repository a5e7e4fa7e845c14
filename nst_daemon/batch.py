"""Running stylize jobs over image files: in the daemon or in-process, resumable.

A *runner* turns one image into its stylised version; ``DaemonRunner`` sends it to the
daemon, ``LocalRunner`` hands the same ``StylizeRequest`` to the daemon's own job
function in this process. The
batch loop skips inputs whose output already exists and writes each output atomically
(``imagefile.write_image``), so a run killed at any point can simply be run again: it
finishes the rest, never redoes a finished file and never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nst_client.params import FastParams, GatysParams
from nst_client.protocol import Image, Limits, Progress, Result, StylizeRequest
from nst_core.errors import ImageError
from nst_core.pillow_modes import is_picture_file
from nst_daemon.imagefile import read_image, write_image

ProgressHandler = Callable[[Any], None]  # a Progress reply, or the engine's own in-process


@dataclass
class StyleSpec:
    """What to paint with: the parts of a stylize request that every image shares (the
    params' type is the method)."""

    style: str | None = None
    style_images: list[Image] = field(default_factory=list)
    params: FastParams | GatysParams = field(default_factory=FastParams)

    @property
    def method(self) -> str:
        return "gatys" if isinstance(self.params, GatysParams) else "fast"

    def request(self, image: Image) -> StylizeRequest:
        """The request for one picture (checked as the daemon checks it)."""
        return StylizeRequest(image, self.style, tuple(self.style_images), None, self.params)


class PictureJob(Protocol):
    """One submitted picture: ``result`` waits for it, ``close`` abandons (cancels) it."""

    def result(self, on_progress: ProgressHandler | None = None) -> Image: ...

    def close(self) -> None: ...


class Runner(Protocol):
    spec: StyleSpec  # what it paints with (``nst video`` sets one per frame)

    def start(self, image: Image) -> PictureJob: ...


class _DaemonJob:
    def __init__(self, events: Generator[Any, None, None]) -> None:
        self.events = events

    def result(self, on_progress: ProgressHandler | None = None) -> Image:
        with contextlib.closing(self.events):  # leaving early (Ctrl-C) cancels the job
            for event in self.events:
                if isinstance(event, Result) and event.image is not None:
                    return event.image
                if isinstance(event, Progress) and on_progress is not None:
                    on_progress(event)
        raise RuntimeError("the daemon ended the job without a result")

    def close(self) -> None:
        self.events.close()


class DaemonRunner:
    """Sends pictures to the daemon through a connected ``Client``."""

    def __init__(self, client: Any, spec: StyleSpec) -> None:
        self.client = client
        self.spec = spec

    def start(self, image: Image) -> PictureJob:
        return _DaemonJob(self.client.run(self.spec.request(image)))


class LocalRunner:
    """Runs jobs in this process with the daemon's own job function and request checks."""

    def __init__(self, spec: StyleSpec) -> None:
        from nst_daemon.models import Models

        self.spec = spec
        self.models = Models()

    def start(self, image: Image) -> PictureJob:
        return _LocalJob(self, image)

    def close(self) -> None:
        self.models.release_memory()


class _LocalJob:
    def __init__(self, runner: LocalRunner, image: Image) -> None:
        self.runner, self.image = runner, image

    def result(self, on_progress: ProgressHandler | None = None) -> Image:
        from nst_daemon.execute import execute_stylize

        request = self.runner.spec.request(self.image).check_limits(Limits())
        return execute_stylize(request, self.runner.models, on_progress)["image"]

    def close(self) -> None:
        pass


@dataclass
class Task:
    source: Path
    target: Path


def plan_batch(input_dir: Path, output_dir: Path) -> tuple[list[Task], list[Task]]:
    """``(todo, done)``: every image in ``input_dir`` mapped to the same name in ``output_dir``.

    Outputs keep their input's file name (and so its format), which makes the mapping
    one-to-one; an existing output means the input is done.
    """
    sources = sorted(p for p in input_dir.iterdir() if p.is_file() and is_picture_file(p))
    tasks = [Task(p, output_dir / p.name) for p in sources]
    done = [t for t in tasks if t.target.exists()]
    todo = [t for t in tasks if not t.target.exists()]
    return todo, done


def _identity(path: Path) -> tuple[int, int] | None:
    """The file ``path`` leads to (through any symlinks), as ``(device, inode)``."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def input_clash(targets: Iterable[Path], inputs: Iterable[Path]) -> tuple[Path, Path] | None:
    """``(output, input)`` when writing an output would replace one of the run's inputs.

    An output clashes when it names an input, or is a hard link or symlink to one: the
    run must be refused before any file is written. ``None`` when the outputs are safe.
    """
    by_identity: dict[tuple[int, int], Path] = {}
    by_path: dict[Path, Path] = {}
    for source in inputs:
        by_path[source.resolve()] = source
        identity = _identity(source)
        if identity is not None:
            by_identity[identity] = source
    for target in targets:
        source = by_path.get(target.resolve())
        identity = _identity(target)
        if source is None and identity is not None:
            source = by_identity.get(identity)
        if source is not None:
            return target, source
    return None


def is_picture_error(exc: Exception) -> bool:
    """Errors about one picture (as opposed to the style, the daemon or the machine)."""
    return isinstance(exc, ImageError) or getattr(exc, "code", None) in ("bad_image", "too_large")


def run_tasks(
    tasks: Iterable[Task],
    runner: Runner,
    on_progress: ProgressHandler | None = None,
    on_failure: Callable[[Task, Exception], None] | None = None,
    depth: int = 2,
) -> Iterator[Task]:
    """Stylise each task, yielding it once its output is safely on disk.

    Up to ``depth`` pictures are submitted ahead, so the daemon computes the next
    picture while this process writes the previous one. A picture that cannot be used
    (unreadable, too large) goes to ``on_failure`` and the rest continue; without
    ``on_failure`` it stops the run. Any other error stops the run.
    """
    pending: deque[tuple[Task, PictureJob]] = deque()
    queue = iter(tasks)

    def launch() -> None:
        while len(pending) < depth and (task := next(queue, None)) is not None:
            try:
                pending.append((task, runner.start(read_image(task.source))))
            except Exception as exc:
                if on_failure is None or not is_picture_error(exc):
                    raise
                on_failure(task, exc)

    try:
        launch()
        while pending:
            task, job = pending.popleft()
            try:
                result = job.result(on_progress)
            except Exception as exc:
                if on_failure is None or not is_picture_error(exc):
                    raise
                on_failure(task, exc)
            else:
                write_image(task.target, result)
                yield task
            launch()
    finally:
        for _, job in pending:
            job.close()
