"""``nst video``: real files made with PyAV in the test (a pan over a generated picture,
with a sine tone), stylised with --local and through a real daemon.

Styles are random fast-style networks in a temporary ``NST_HOME`` (no reference data);
clips are tiny and short so the tests run in seconds on a small CPU.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

av = pytest.importorskip("av", reason="PyAV (the video extra) is not installed")
np = pytest.importorskip("numpy")

from nst_client import protocol  # noqa: E402
from nst_client.errors import ProtocolError  # noqa: E402
from nst_client.protocol import StylizeRequest  # noqa: E402
from nst_core.motion_clips import make_clip  # noqa: E402
from nst_daemon import video  # noqa: E402

from daemon_helpers import DaemonProcess, environment, free_endpoint, save_random_style  # noqa: E402

NST = [sys.executable, "-m", "nst_daemon"]
RATE = 10
SAMPLE_RATE = 16000


def picture(height: int = 96, width: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 8), max(2, width // 8), generator=g)
    return torch.nn.functional.interpolate(
        coarse, size=(height, width), mode="bicubic", align_corners=False
    ).clamp(0, 1)


def write_clip(
    path: Path, size: tuple[int, int] = (48, 64), frames: int = 6, audio: bool = True
) -> Path:
    """A pan over a generated picture as H.264 (4:4:4 for odd sizes), with an AAC tone."""
    height, width = size
    clip = make_clip(picture(), "pan", size, frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        for frame in clip.frames:
            array = (frame[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode(None))
        if sound is not None:
            count = SAMPLE_RATE * frames // RATE
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(count) / SAMPLE_RATE)
            tone = tone.astype(np.float32)[None]
            for start in range(0, count, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[:, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def describe(path: Path) -> dict:
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        info = {"size": (v.codec_context.height, v.codec_context.width), "rate": v.average_rate}
        info["pixels"] = [f.to_ndarray(format="rgb24") for f in container.decode(v)]
        info["frames"] = len(info["pixels"])
    with av.open(str(path)) as container:
        audio = container.streams.audio
        info["audio"] = audio[0].codec_context.name if audio else None
        samples = sum(f.samples for f in container.decode(audio[0])) if audio else 0
        info["seconds"] = samples / audio[0].codec_context.sample_rate if audio else 0.0
    return info


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("nst-home")
    save_random_style(home, "rand", seed=3)
    return environment(home, free_endpoint())  # --local tests never reach it


def nst(env: dict[str, str], *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NST, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("nst: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def no_partials(folder: Path) -> bool:
    return not list(folder.glob(".*.nst-partial"))


def test_round_trip_keeps_rate_size_frames_and_audio(env, tmp_path):
    source = write_clip(tmp_path / "in.mp4")
    target = tmp_path / "out.mp4"
    result = nst(env, "video", source, target, "--style", "rand", "--local")
    assert result.returncode == 0, result.stderr
    before, after = describe(source), describe(target)
    assert after["frames"] == before["frames"] == 6
    assert after["size"] == before["size"] == (48, 64)
    assert after["rate"] == before["rate"] == Fraction(RATE)
    assert after["audio"] == "aac"
    assert after["seconds"] == pytest.approx(before["seconds"], abs=0.05)
    assert before["seconds"] > 0.5
    assert not np.array_equal(after["pixels"][2], before["pixels"][2])  # stylised
    assert no_partials(tmp_path)


@pytest.mark.parametrize(
    ("size", "frames", "suffix"),
    [
        ((33, 45), 3, ".mp4"),
        ((48, 64), 1, ".mp4"),
        ((30, 40), 3, ".webm"),
        ((30, 40), 3, ".gif"),
        ((31, 41), 2, ".mov"),
    ],
)
def test_odd_sizes_one_frame_and_formats(env, tmp_path, size, frames, suffix):
    source = write_clip(tmp_path / "in.mp4", size, frames)
    target = tmp_path / f"out{suffix}"
    result = nst(
        env,
        "video",
        source,
        target,
        "--style",
        "rand",
        "--local",
        "--strength",
        "0.7",
        "--preserve-colors",
        "--max-size",
        "32",
    )
    assert result.returncode == 0, result.stderr
    info = describe(target)
    assert info["frames"] == frames and info["size"] == size
    if suffix == ".gif":
        assert info["audio"] is None and "no sound" in result.stderr
    else:
        assert info["audio"] in ("aac", "opus")
        assert info["seconds"] > 0.1


def test_corrupt_file_is_a_clear_error(env, tmp_path):
    source = write_clip(tmp_path / "in.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    result = nst(env, "video", broken, tmp_path / "out.mp4", "--style", "rand", "--local")
    assert_clean_error(result, "broken.mp4", "not a video")
    damaged = tmp_path / "damaged.mp4"
    data = bytearray(source.read_bytes())
    data[len(data) // 3 :] = b"\xff" * (len(data) - len(data) // 3)
    damaged.write_bytes(bytes(data))
    result = nst(env, "video", damaged, tmp_path / "out2.mp4", "--style", "rand", "--local")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "nst: error:" in result.stderr
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out2.mp4").exists()
    assert no_partials(tmp_path)


def test_usage_errors(env, tmp_path):
    source = write_clip(tmp_path / "in.mp4", frames=2, audio=False)
    assert_clean_error(
        nst(env, "video", tmp_path / "nope.mp4", tmp_path / "o.mp4", "--style", "rand", "--local"),
        "no such file",
    )
    assert_clean_error(
        nst(env, "video", source, tmp_path / "o.avi", "--style", "rand", "--local"), ".avi"
    )
    assert_clean_error(nst(env, "video", source, source, "--style", "rand", "--local"))
    assert_clean_error(
        nst(env, "video", source, tmp_path / "o.mp4", "--style", "nope", "--local"), "nope"
    )


def test_interrupted_run_leaves_no_output(tmp_path):
    source = write_clip(tmp_path / "in.mp4", frames=4)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the previous version")

    def stylize(data: bytes, width: int, height: int, index: int) -> bytes:
        if index == 2:
            raise KeyboardInterrupt
        return data

    with pytest.raises(KeyboardInterrupt):
        video.transcode(source, target, stylize)
    assert target.read_bytes() == b"the previous version"
    assert no_partials(tmp_path)
    assert video.transcode(source, target, lambda d, w, h, i: d) == 4
    assert describe(target)["frames"] == 4


def test_without_pyav_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(video.VideoError, match=r"video\]"):
        video.require_av()


def test_clip_parameters_are_checked():
    image = {"width": 2, "height": 2, "channels": 3, "dtype": "u8", "data": bytes(12)}

    def parse(**params):
        msg = protocol.make_request("stylize", image=image, style="rand", params=params)
        return StylizeRequest.from_wire(msg)

    assert parse(clip="abc", clip_frame=3, consistency="stats").params.clip == "abc"
    for bad in (
        {"clip": ""},
        {"clip": "x" * 65},
        {"clip": 5},
        {"clip_frame": -1},
        {"consistency": "smooth"},
    ):
        with pytest.raises(ProtocolError) as err:
            parse(**bad)
        assert err.value.code == "bad_parameter"


def test_through_the_daemon_equals_local(tmp_path):
    home = tmp_path / "home"
    save_random_style(home, "rand", seed=3)
    source = write_clip(tmp_path / "in.mp4", frames=4)
    with DaemonProcess(home).start() as daemon:
        env = environment(home, daemon.endpoint)
        result = nst(env, "video", source, tmp_path / "daemon.mp4", "--style", "rand")
        assert result.returncode == 0, result.stderr + daemon.output()
        local = nst(env, "video", source, tmp_path / "local.mp4", "--style", "rand", "--local")
        assert local.returncode == 0, local.stderr
    served, here = describe(tmp_path / "daemon.mp4"), describe(tmp_path / "local.mp4")
    assert served["frames"] == here["frames"] == 4 and served["audio"] == "aac"
    for a, b in zip(served["pixels"], here["pixels"], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
