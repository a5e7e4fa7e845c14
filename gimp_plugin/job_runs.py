"""Running a procedure's daemon jobs with GIMP's progress bar: the selected layers one by
one, or the image's layers as the frames of one animation; the results are added in one
undo step, or nothing on an error. Also the procedures' return values."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import gi

gi.require_version("Gimp", "3.0")
import daemon_link  # noqa: E402
from daemon_link import DaemonError, ProtocolError, short_name  # noqa: E402
from gi.repository import Gimp, GLib, GObject  # noqa: E402
from layer_io import (  # noqa: E402
    PluginError,
    Source,
    animation_frames,
    check_drawables,
    check_image_type,
)

# ------------------------------------------------------------------------------------------
# return values


def fail(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def success(procedure: Gimp.Procedure, value: GObject.Value) -> Gimp.ValueArray:
    """SUCCESS with ``value`` as the procedure's one return value."""
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    values.remove(1)
    values.insert(1, value)
    return values


def cancelled(procedure: Gimp.Procedure) -> Gimp.ValueArray:
    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())


# ------------------------------------------------------------------------------------------
# running a job


class ProgressBar:
    """GIMP's progress bar, following the daemon's events over ``count`` jobs.

    Cancelling: GIMP's cancel button ends the plug-in process; the client then stops
    pinging and the daemon cancels that client's job within a few seconds.
    """

    def __init__(self, title: str, count: int, previews: str | None = None, unit: str = "Layer"):
        self.title = title
        self.count = count
        self.unit = unit  # what each job is: "Layer", or "Frame" for animation frames
        self.index = 0
        self.previews = previews  # the painting's name: show Gatys previews in a window
        self.preview_window = None
        Gimp.progress_init(title)

    def status(self, text: str) -> None:
        """The client's own news ("starting daemon…")."""
        if "start" in text:
            Gimp.progress_set_text("Starting the Neural Style daemon…")
            Gimp.progress_pulse()

    def set_text(self, text: str) -> None:
        if self.count > 1:
            text = f"{self.unit} {self.index + 1} of {self.count}: {text}"
        Gimp.progress_set_text(text)
        daemon_link.log_event("progress", text=text)

    def event(self, event: daemon_link.JobEvent) -> None:
        if isinstance(event, daemon_link.Accepted):
            if event.position:
                self.set_text(f"Waiting in the daemon's queue (position {event.position})")
            else:
                self.set_text("Starting")
        elif isinstance(event, daemon_link.Progress):
            self.set_text(daemon_link.progress_text(event))
            if event.total:
                fraction = min(event.step / event.total, 1.0)
                Gimp.progress_update((self.index + fraction) / self.count)
            else:
                Gimp.progress_pulse()
            if self.previews and event.preview is not None:
                self.show_preview(event.preview)

    def show_preview(self, picture) -> None:
        if self.preview_window is None:
            from preview import PreviewWindow

            self.preview_window = PreviewWindow(self.previews or "")
        self.preview_window.show(picture)

    def end(self) -> None:
        if self.preview_window is not None:
            self.preview_window.close()
        Gimp.progress_end()

    def job_done(self) -> None:
        self.index += 1
        Gimp.progress_update(self.index / self.count)


def stylise_sources(
    sources: list[Source], progress: ProgressBar, request_for: Callable[[int], dict]
) -> list:
    """Each source through the daemon in order (``request_for(index)`` gives its request
    fields), progress shown; the results, each checked against its source."""
    results = []
    with daemon_link.connect(on_status=progress.status) as client:
        for index, source in enumerate(sources):
            for event in client.submit(source.pixels(), **request_for(index)):
                progress.event(event)
            progress.job_done()
            results.append(event.image if isinstance(event, daemon_link.Result) else None)
    for source, result in zip(sources, results, strict=True):
        source.check_result(result)
    return results


def stylise_all(
    procedure: Gimp.Procedure,
    image: Gimp.Image,
    make_sources: Callable[[], list[Source]],
    request: Callable[[], dict],
    request_for: Callable[[dict, int], dict],
    make_progress: Callable[[int], ProgressBar],
) -> tuple[list[Source], list] | Gimp.ValueArray:
    """The checks, the jobs and their progress bar of a procedure run: the sources and their
    results, or the procedure's failure (a bad input or a daemon error, in plain words).
    ``request_for(request, index)`` gives the request fields of source ``index``."""
    progress = None
    try:
        check_image_type(image)
        sources = make_sources()
        kwargs = request()
        progress = make_progress(len(sources))
        results = stylise_sources(sources, progress, lambda index: request_for(kwargs, index))
    except (PluginError, ProtocolError) as exc:
        return fail(procedure, str(exc))
    except (DaemonError, OSError) as exc:
        return fail(procedure, daemon_link.describe_error(exc))
    finally:
        if progress is not None:
            progress.end()
    return sources, results


def added_in_one_step(
    procedure: Gimp.Procedure, image: Gimp.Image, add: Callable[[], list[Gimp.Layer]]
) -> Gimp.ValueArray:
    """Run ``add`` (which adds the result layers) as one undo step; the last layer is the
    procedure's return value."""
    image.undo_group_start()
    new_layers = add()
    image.undo_group_end()
    Gimp.displays_flush()
    return success(procedure, GObject.Value(Gimp.Layer, new_layers[-1]))


def run_jobs(
    procedure: Gimp.Procedure,
    image: Gimp.Image,
    drawables: list[Gimp.Drawable],
    request: Callable[[], dict],
    layer_name: str,
    placement: str = "above",
    previews: str | None = None,
) -> Gimp.ValueArray:
    """Stylize each drawable; add all result layers as one undo step, or nothing on error.

    With ``previews`` (interactive Gatys runs: the painting's name), the request asks for
    intermediate pictures and a window shows them.
    """

    def request_for(kwargs: dict, _index: int) -> dict:
        if not previews:
            return kwargs
        from preview import PREVIEW_EVERY

        return dict(
            kwargs, params=dataclasses.replace(kwargs["params"], preview_every=PREVIEW_EVERY)
        )

    run = stylise_all(
        procedure,
        image,
        lambda: [Source(image, layer, placement) for layer in check_drawables(drawables)],
        request,
        request_for,
        lambda count: ProgressBar(f"Neural Style: {layer_name}", count, previews),
    )
    if not isinstance(run, tuple):
        return run
    sources, results = run
    return added_in_one_step(
        procedure,
        image,
        lambda: [
            source.add_result(result, layer_name)
            for source, result in zip(sources, results, strict=True)
        ],
    )


def run_frames(
    procedure: Gimp.Procedure,
    image: Gimp.Image,
    request: Callable[[], dict],
    title: str,
) -> Gimp.ValueArray:
    """Stylise the image's layers as the frames of one animation, consistently over time.

    The frames (the bottom layer first: GIMP's animation convention) go to the daemon in
    order as one clip (``params.clip``, a fresh id per run, and ``params.clip_frame``), so
    it carries each frame's look into the next. The results are added only once every
    frame is done, in one undo step: a new layer group on top of the image named after the
    style, holding one layer per frame in the same order (at the frame's offsets, masked
    by the selection like any result). Nothing is added on an error or a cancel.
    """
    clip = uuid.uuid4().hex

    def request_for(kwargs: dict, index: int) -> dict:
        params = dataclasses.replace(kwargs["params"], clip=clip, clip_frame=index)
        return dict(kwargs, params=params)

    run = stylise_all(
        procedure,
        image,
        lambda: [Source(image, frame) for frame in animation_frames(image)],
        request,
        request_for,
        lambda count: ProgressBar(f"Neural Style: {title}", count, unit="Frame"),
    )
    if not isinstance(run, tuple):
        return run
    sources, results = run

    def add() -> list[Gimp.Layer]:
        group = Gimp.GroupLayer.new(image, title)
        image.insert_layer(group, None, 0)
        return [
            source.add_result(result, short_name(f"{source.drawable.get_name()} {title}"), group, 0)
            for source, result in zip(sources, results, strict=True)
        ]

    return added_in_one_step(procedure, image, add)
