"""Videos: ``nst video`` (decode, stylise frame by frame, encode) and the daemon's clips.

``nst video IN OUT --style NAME`` reads any video FFmpeg reads (PyAV, whose wheels bundle
FFmpeg), stylises every frame with temporal consistency (``nst_core.motion``) and writes
mp4/mov/mkv (H.264), webm (VP9) or gif, keeping the frame rate (each frame's timestamp),
the size and the audio track (copied when the container takes its codec, else
re-encoded; a GIF has no sound). OUT is written to a temporary file beside it and renamed
at the end (``nst_core.atomic``): an interrupted or failed run never leaves a half-written
OUT. An existing OUT is replaced, but never the input.

Through the daemon, each frame is an ordinary ``stylize`` request whose params carry
``clip`` (an id the client chooses for the video), ``clip_frame`` (0, 1, ...) and
``consistency``; the daemon keeps the clip's temporal state (:func:`clip_frame`) between
requests, so a GPU daemon serves videos with the protocol's existing messages. With
``--local`` the same job function runs in this process.

PyAV (and OpenCV, for the optical flow) are the optional ``video`` extra; without PyAV
``nst video`` says how to install it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst_client.params import FastParams
from nst_core.errors import ImageError, ParameterError

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------- daemon side

#: Clips the daemon keeps state for at once (least recently used dropped first), and how
#: long an idle clip's state is kept. A dropped clip's next frame starts afresh.
MAX_CLIPS = 8
CLIP_IDLE_S = 300.0


@dataclass
class _ClipState:
    stylizer: Any  # nst_core.motion.VideoStylizer
    style_path: Path
    next_frame: int
    used: float


_clips: OrderedDict[str, _ClipState] = OrderedDict()
_clips_lock = threading.Lock()


def clip_frame(
    model: Any,
    style_path: Path,
    content: torch.Tensor,
    params: FastParams,
    device: Any,
    cancel: Any = None,
) -> torch.Tensor:
    """Stylise one frame of the clip ``params.clip``, consistent with its previous one.

    Frame 0 (or a frame that does not follow the last one seen, another style, another
    consistency) starts the clip afresh, so a lost or repeated frame never mixes clips.
    """
    from nst_core.motion import VideoStylizer, consistency_of
    from nst_core.progress import check

    check(cancel)
    clip_id = str(params.clip)
    index = params.clip_frame
    consistency = consistency_of(params.consistency)
    now = time.monotonic()
    with _clips_lock:
        for stale in [k for k, v in _clips.items() if now - v.used > CLIP_IDLE_S]:
            del _clips[stale]
        state = _clips.pop(clip_id, None)
        if (
            state is None
            or state.style_path != style_path
            or state.stylizer.consistency != consistency
            or state.stylizer.model is not model
        ):
            state = _ClipState(
                VideoStylizer(model, consistency, device, params.tile_size), style_path, 0, now
            )
        if index != state.next_frame:
            state.stylizer.reset()
        _clips[clip_id] = state
        while len(_clips) > MAX_CLIPS:
            _clips.popitem(last=False)
    styled = state.stylizer.step(content)
    state.next_frame, state.used = index + 1, time.monotonic()
    return styled


def forget_clips() -> None:
    """Drop every clip's state (tests; the daemon lets idle clips expire)."""
    with _clips_lock:
        _clips.clear()


# --------------------------------------------------------------------------- files

#: Output suffix -> (container format, video codec, audio codecs it takes as they are,
#: the audio codec used otherwise; None: no audio).
OUTPUTS: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    ".mp4": ("mp4", "libx264", ("aac", "mp3", "alac", "opus", "flac", "ac3"), "aac"),
    ".m4v": ("mp4", "libx264", ("aac", "mp3", "alac", "ac3"), "aac"),
    ".mov": ("mov", "libx264", ("aac", "mp3", "alac", "pcm_s16le", "pcm_s24le"), "aac"),
    ".mkv": (
        "matroska",
        "libx264",
        ("aac", "mp3", "opus", "vorbis", "flac", "ac3", "pcm_s16le"),
        "aac",
    ),
    ".webm": ("webm", "libvpx-vp9", ("opus", "vorbis"), "libopus"),
    ".gif": ("gif", "gif", (), None),
}

INSTALL_HINT = (
    "install the video extra: .venv/bin/pip install 'gimp-neural-style[video]' "
    "(PyAV and OpenCV; ./install.sh --dev includes it)"
)


class VideoError(ImageError):
    """A video that cannot be read or written (code ``bad_image``)."""


def require_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError(f"`nst video` needs PyAV, which is not installed; {INSTALL_HINT}") from exc
    return av


def output_kind(path: Path) -> tuple[str, str, tuple[str, ...], str | None]:
    kind = OUTPUTS.get(path.suffix.lower())
    if kind is None:
        raise ParameterError(
            f"{path}: unknown video type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(OUTPUTS)}"
        )
    return kind


@dataclass
class VideoInfo:
    width: int
    height: int
    rate: Fraction | None
    frames: int  # 0 when the file does not say
    audio: str | None  # codec name of the first audio track


def probe(path: Path) -> VideoInfo:
    """Size, rate, frame count and audio codec of a video file (``VideoError`` if it is
    not a video FFmpeg can read)."""
    av = require_av()
    with _opened(av, path) as container:
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            stream.codec_context.width,
            stream.codec_context.height,
            stream.average_rate,
            _frame_count(stream),
            audio,
        )


@contextlib.contextmanager
def _opened(av: Any, path: Path) -> Iterator[Any]:
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a video that can be read ({_reason(exc)})") from exc
    try:
        if not container.streams.video:
            raise VideoError(f"{path}: the file holds no video stream")
        yield container
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _frame_count(stream: Any) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and stream.average_rate:
        return max(1, round(float(stream.duration * stream.time_base * stream.average_rate)))
    return 0


#: Turns one RGB frame (``bytes`` of ``height x width x 3`` u8) into its stylised version.
FrameFn = Callable[[bytes, int, int, int], bytes]


def transcode(
    source: Path,
    target: Path,
    stylize: FrameFn,
    on_frame: Callable[[int, int], None] | None = None,
) -> int:
    """Decode ``source``, pass every frame through ``stylize``, encode into ``target``
    (atomically); returns the number of frames written. ``on_frame(done, total)``
    follows the progress (``total`` 0 when unknown)."""
    av = require_av()
    from nst_core.atomic import atomic_write

    fmt, codec, copyable, audio_codec = output_kind(target)
    written = 0
    with _opened(av, source) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio and audio_codec else None
        total = _frame_count(vin)
        with atomic_write(target) as raw, av.open(raw, "w", format=fmt) as out:
            # every stream exists before the first packet is written (the header)
            vout = _video_stream(out, codec, vin)
            aout, copy_audio = None, False
            if ain is not None:
                copy_audio = ain.codec_context.name in copyable
                if copy_audio:
                    aout = out.add_stream_from_template(ain)
                else:
                    aout = out.add_stream(audio_codec, rate=ain.codec_context.sample_rate or 48000)
            streams = [vin] if ain is None else [vin, ain]
            try:
                for packet in inp.demux(*streams):
                    if packet.stream is vin:
                        for frame in packet.decode():
                            _encode(av, out, vout, frame, stylize, written)
                            written += 1
                            if on_frame is not None:
                                on_frame(written, max(total, written))
                    elif aout is not None:
                        if copy_audio:
                            if packet.dts is None:
                                continue
                            packet.stream = aout
                            out.mux(packet)
                        else:
                            for chunk in packet.decode():
                                out.mux(aout.encode(chunk))
            except av.FFmpegError as exc:
                raise VideoError(
                    f"{source}: the video is damaged after frame {written} ({_reason(exc)})"
                ) from exc
            if not written:
                raise VideoError(f"{source}: the video stream holds no frame")
            out.mux(vout.encode(None))
            if aout is not None and not copy_audio:
                out.mux(aout.encode(None))
    return written


def _video_stream(out: Any, codec: str, vin: Any) -> Any:
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    if codec == "gif":
        rate = min(rate, Fraction(50))  # GIF delays are in 1/100 s
    stream = out.add_stream(codec, rate=rate)
    width, height = vin.codec_context.width, vin.codec_context.height
    if not width or not height:
        raise VideoError("the video stream does not say its size")
    stream.width, stream.height = width, height
    if vin.time_base:
        stream.time_base = vin.time_base
    if codec == "gif":
        stream.pix_fmt = "rgb8"
    elif codec == "libx264":
        # 4:2:0 needs even sides; odd sizes keep their size in 4:4:4
        even = width % 2 == 0 and height % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        stream.options = {"crf": "18", "preset": "medium"}
    else:
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "24", "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    return stream


def _encode(av: Any, out: Any, vout: Any, frame: Any, stylize: FrameFn, index: int) -> None:
    width, height = frame.width, frame.height
    rgb = frame.to_ndarray(format="rgb24")
    styled = stylize(rgb.tobytes(), width, height, index)
    import numpy as np

    array = np.frombuffer(styled, dtype=np.uint8).reshape(height, width, 3)
    new = av.VideoFrame.from_ndarray(array, format="rgb24")
    new.pts, new.time_base = frame.pts, frame.time_base
    if new.pts is None:
        new.pts = index
    out.mux(vout.encode(new))


# --------------------------------------------------------------------------- the command


def add_parser(sub: Any, parents: list[argparse.ArgumentParser], formatter: Any) -> None:
    p = sub.add_parser(
        "video",
        parents=parents,
        formatter_class=formatter,
        help="stylise a video or an animation with a fast style",
        description="Stylise every frame of a video with a fast style, keeping motion stable "
        "(shared normalisation statistics, strokes carried along the optical flow). Reads "
        "what FFmpeg reads; writes .mp4 .m4v .mov .mkv (H.264), .webm (VP9) or .gif. Frame "
        "rate, size and the audio track are kept. OUT is written under a temporary name "
        "and renamed when complete. Needs the video extra (PyAV, OpenCV).",
        epilog="""\
examples:
  nst video clip.mp4 clip-starry.mp4 --style starry-night
  nst video holiday.mov painted.webm --style udnie --max-size 720 --strength 0.8
  nst video loop.gif loop-wave.gif --style great-wave --preserve-colors
  nst video clip.mp4 plain.mp4 --style udnie --consistency off   # per-frame, flickers""",
    )
    p.add_argument("input", metavar="IN", type=Path, help="the video to stylise")
    p.add_argument("output", metavar="OUT", type=Path, help="the stylised video")
    p.add_argument(
        "--style",
        required=True,
        metavar="NAME|FILE",
        help="fast style: a name (see `nst styles`) or a model file",
    )
    p.add_argument(
        "--strength",
        type=_fraction,
        metavar="S",
        help="blend with the original, 0..1 (default 1: fully stylised)",
    )
    p.add_argument(
        "--preserve-colors",
        nargs="?",
        const="luminance",
        choices=["luminance", "histogram"],
        help="keep the video's colours: luminance (the default when given) or histogram",
    )
    from nst_daemon.cli.parser import add_speed_option

    add_speed_option(p)
    p.add_argument(
        "--max-size",
        type=_positive_int,
        metavar="PX",
        help="limit the long side while stylising; frames are scaled back",
    )
    p.add_argument(
        "--consistency",
        choices=["full", "stats", "off"],
        default="full",
        help="full (default): shared statistics and strokes that follow the "
        "motion; stats: shared statistics only; off: each frame on its own",
    )
    p.set_defaults(func=cmd_video)


def _fraction(text: str) -> float:
    from nst_daemon.cli.parser import fraction as parse

    return parse(text)


def _positive_int(text: str) -> int:
    from nst_daemon.cli.parser import positive_int as parse

    return parse(text)


def cmd_video(args: argparse.Namespace) -> int:
    from nst_client.protocol import Image
    from nst_daemon.batch import StyleSpec
    from nst_daemon.cli.errors import CommandError, say
    from nst_daemon.cli.options import make_runner, refuse_input_clash, style_spec

    source: Path = args.input.expanduser()
    target: Path = args.output.expanduser()
    require_av()
    output_kind(target)
    if not source.is_file():
        raise VideoError(f"{source}: no such file")
    refuse_input_clash([target], [source])
    if not target.parent.is_dir():
        raise CommandError(f"{target.parent}: no such folder")
    info = probe(source)
    if info.audio and output_kind(target)[3] is None:
        say(f"{target.suffix} holds no sound: the audio track is left out")
    args.style_image, args.method, args.iterations, args.quality = [], "fast", None, None
    spec: StyleSpec = style_spec(args)
    params = replace(spec.params, clip=uuid.uuid4().hex, consistency=args.consistency)
    runner, close = make_runner(args, spec)

    def stylize(data: bytes, width: int, height: int, index: int) -> bytes:
        runner.spec = StyleSpec(spec.style, [], replace(params, clip_frame=index))
        job = runner.start(Image(width, height, 3, data))
        try:
            return job.result().data
        finally:
            job.close()

    from tqdm import tqdm

    bar = tqdm(
        total=info.frames or None,
        desc=source.name,
        unit="frame",
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def on_frame(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        count = transcode(source, target, stylize, on_frame)
    finally:
        bar.close()
        close()
    print(target, flush=True)
    say(f"{count} frames stylised")
    return 0
