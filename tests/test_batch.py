"""The batch loop and image files: planning, atomic writes, failures, pipelining.

The runner here is a small in-process one (it inverts pixels), so these tests check the
loop itself; tests/test_cli.py runs the same loop against a real daemon.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage

from nst_client.protocol import Image
from nst_core.atomic import PARTIAL_SUFFIX, remove_partials
from nst_core.errors import ImageError
from nst_daemon.batch import Task, plan_batch, run_tasks
from nst_daemon.imagefile import output_format, read_image, write_image


def _picture(path: Path, mode: str = "RGB", size: tuple[int, int] = (8, 6)) -> Path:
    colour = {"L": 90, "LA": (90, 200), "RGB": (10, 120, 250), "RGBA": (10, 120, 250, 77)}[mode]
    PILImage.new(mode, size, colour).save(path)
    return path


class InvertRunner:
    """Starts jobs lazily and records the order of starts and results."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def start(self, image: Image) -> InvertJob:
        self.log.append("start")
        return InvertJob(self, image)


class InvertJob:
    def __init__(self, runner: InvertRunner, image: Image) -> None:
        self.runner, self.image, self.closed = runner, image, False

    def result(self, on_progress=None) -> Image:
        self.runner.log.append("result")
        if on_progress is not None:
            on_progress({"type": "progress", "step": 1, "total": 1})
        data = bytes(255 - b for b in self.image.data)
        return Image(self.image.width, self.image.height, self.image.channels, data)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_read_write_round_trip_keeps_channels(tmp_path: Path, mode: str) -> None:
    src = _picture(tmp_path / "in.png", mode)
    image = read_image(src)
    assert image.channels == len(mode) and (image.width, image.height) == (8, 6)
    write_image(tmp_path / "out.png", image)
    again = PILImage.open(tmp_path / "out.png")
    assert again.mode == mode and again.tobytes() == PILImage.open(src).tobytes()


def test_palette_and_16_bit_images_become_8_bit(tmp_path: Path) -> None:
    pal = PILImage.new("P", (4, 4), 3)
    pal.info["transparency"] = 3
    pal.save(tmp_path / "pal.png", transparency=3)
    assert read_image(tmp_path / "pal.png").channels == 4
    PILImage.new("I;16", (4, 4), 65535).save(tmp_path / "deep.png")
    deep = read_image(tmp_path / "deep.png")
    assert deep.channels == 1 and set(deep.data) == {255}


def test_jpeg_output_drops_alpha(tmp_path: Path) -> None:
    image = read_image(_picture(tmp_path / "in.png", "RGBA"))
    write_image(tmp_path / "out.jpg", image)
    assert PILImage.open(tmp_path / "out.jpg").mode == "RGB"


def test_unreadable_inputs_and_unwritable_outputs_are_image_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageError, match="not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="extension"):
        output_format(tmp_path / "out.xyz")


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    bad = Image(2, 2, 3, b"\0" * 12, dtype="f32")  # refused before anything is written
    with pytest.raises(ImageError):
        write_image(target, bad)
    assert target.read_bytes() == b"old"
    write_image(target, Image(2, 2, 3, bytes(range(12))))
    assert PILImage.open(target).size == (2, 2)
    assert not list(tmp_path.glob(f"*{PARTIAL_SUFFIX}"))


def test_plan_skips_finished_outputs_and_ignores_other_files(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("b.png", "a.jpg", "c.PNG"):
        _picture(src / name)
    (src / "readme.txt").write_text("x")
    (src / "sub").mkdir()
    _picture(out / "b.png")
    todo, done = plan_batch(src, out)
    assert [t.source.name for t in todo] == ["a.jpg", "c.PNG"]
    assert [t.target for t in done] == [out / "b.png"]
    (out / f".a.jpg{PARTIAL_SUFFIX}").write_bytes(b"half")
    assert remove_partials(out) == 1
    assert not list(out.glob(f".*{PARTIAL_SUFFIX}"))


def test_run_tasks_pipelines_two_ahead_and_writes_every_output(tmp_path: Path) -> None:
    tasks = [Task(_picture(tmp_path / f"{i}.png"), tmp_path / f"{i}-out.png") for i in range(4)]
    runner = InvertRunner()
    done = [t.target for t in run_tasks(tasks, runner)]
    assert done == [t.target for t in tasks]
    # two jobs are submitted before the first result is awaited, then one per result
    assert runner.log[:3] == ["start", "start", "result"]
    assert runner.log.count("start") == 4 and runner.log.count("result") == 4
    pixel = PILImage.open(tasks[0].target).getpixel((0, 0))
    assert pixel == (245, 135, 5)


def test_unusable_picture_is_reported_and_the_rest_continue(tmp_path: Path) -> None:
    good = _picture(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    tasks = [Task(bad, tmp_path / "bad-out.png"), Task(good, tmp_path / "good-out.png")]
    failures: list[tuple[Task, Exception]] = []
    done = list(run_tasks(tasks, InvertRunner(), on_failure=lambda t, e: failures.append((t, e))))
    assert [t.source for t in done] == [good]
    assert [t.source for t, _ in failures] == [bad]
    assert not (tmp_path / "bad-out.png").exists()
    with pytest.raises(ImageError):
        list(run_tasks(tasks, InvertRunner()))


def test_stopping_early_closes_jobs_submitted_ahead(tmp_path: Path) -> None:
    tasks = [Task(_picture(tmp_path / f"{i}.png"), tmp_path / f"{i}-out.png") for i in range(3)]
    jobs: list[InvertJob] = []

    class Recording(InvertRunner):
        def start(self, image: Image) -> InvertJob:
            jobs.append(super().start(image))
            return jobs[-1]

    run = run_tasks(tasks, Recording())
    next(run)
    run.close()
    assert [j.closed for j in jobs] == [False, True]
