"""``nst batch --ray``: the batch on a real local Ray (2 CPUs, small object store, no dashboard).

One Ray is started for the module; every test runs real actors in real processes. Pictures
are told apart by their width (20 + index), so a runner that wraps the real ``LocalRunner``
can log every computation (one line per picture started, with the actor's process id), kill
its own actor process, or hold pictures so that a driver can be killed mid-run.

"Exactly once" here means: exactly one output per input, never a half-written one, and a
picture is computed again only when the process computing it died before writing it.
Actors run one torch thread each (Ray's OMP_NUM_THREADS=1 for one CPU), so the local
reference runs with one thread too and the bytes are compared exactly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from nst_core.atomic import PARTIAL_SUFFIX
from nst_daemon import cluster
from nst_daemon.batch import LocalRunner, StyleSpec
from nst_daemon.cli import main

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
import ray  # noqa: E402 - in the dev extra, as pytest is: these tests never skip

STYLE = "udnie"
COUNT = 30
BASE_WIDTH = 20


def picture(path: Path, index: int) -> Path:
    """A textured picture of width ``BASE_WIDTH + index``; modes and formats vary."""
    width, height = BASE_WIDTH + index, 16 + (index * 7) % 29
    mode = ("RGB", "RGBA", "L", "RGB")[index % 4]
    g = torch.Generator().manual_seed(index)
    pixels = torch.randint(0, 256, (height, width, len(mode)), generator=g, dtype=torch.uint8)
    PILImage.fromarray(pixels.squeeze(-1).numpy(), mode).save(path)
    return path


def make_pictures(folder: Path, count: int = COUNT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        picture(folder / f"{i:02d}.{'jpg' if i % 4 == 3 else 'png'}", i)
    return folder


def pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    with PILImage.open(path) as image:
        return image.mode, image.size, image.tobytes()


def outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.endswith(PARTIAL_SUFFIX)}


def partials(folder: Path) -> list[Path]:
    return list(folder.glob(f".*{PARTIAL_SUFFIX}"))


class LoggingRunner:
    """The real ``LocalRunner``, logging "<width> <pid>" for every picture it starts.

    ``kill_width``: SIGKILL this very actor process when that picture starts, once (a
    marker file says it happened). ``hold_from``: pictures at least that wide never finish
    (the actor sleeps), so a driver can be killed while the run is unfinished.
    """

    def __init__(
        self,
        spec: StyleSpec,
        log: str,
        kill_width: int | None = None,
        marker: str | None = None,
        hold_from: int | None = None,
    ) -> None:
        self.inner = LocalRunner(spec)
        self.log, self.kill_width, self.marker, self.hold_from = log, kill_width, marker, hold_from

    def start(self, image):
        with open(self.log, "a") as out:
            out.write(f"{image.width} {os.getpid()}\n")
        if image.width == self.kill_width and self.marker is not None:
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.kill(os.getpid(), signal.SIGKILL)
        if self.hold_from is not None and image.width >= self.hold_from:
            time.sleep(3600)
        return self.inner.start(image)


def computed(log: Path) -> Counter[int]:
    """How many times each picture (by index) was started, from a ``LoggingRunner`` log."""
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) - BASE_WIDTH for line in log.read_text().splitlines())


def pids(log: Path) -> set[int]:
    return {int(line.split()[1]) for line in log.read_text().splitlines()}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local Ray for the module: 2 CPUs, a small object store, no dashboard."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # LoggingRunner to actors
    home = tmp_path_factory.mktemp("nst-home")
    env = pytest.MonkeyPatch()  # restored after the module, for the other test modules
    env.setenv("NST_HOME", str(home))
    ray.init(
        num_cpus=2,
        object_store_memory=100 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"NST_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}},
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        env.undo()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pictures(tmp_path_factory.mktemp("library") / "in")


@pytest.fixture(scope="module")
def reference(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local batch (``nst batch --local``) of the library, with one torch thread."""
    out = tmp_path_factory.mktemp("reference") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["batch", str(library), "-o", str(out), "--style", STYLE, "--local"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert len(outputs(out)) == COUNT
    return out


def assert_matches(out: Path, reference: Path) -> None:
    assert outputs(out) == outputs(reference)
    assert not partials(out)
    for name in sorted(outputs(reference)):
        assert pixels(out / name) == pixels(reference / name), name


# --- tests ----------------------------------------------------------------------------------


def test_without_the_extra_the_error_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pictures(tmp_path / "in", 2)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    code = main(
        ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--style", STYLE, "--ray"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "pip install '.[cluster]'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything is written
    # and the command itself never needs Ray: importing the CLI does not import it
    probe = "import sys, nst_daemon.cli, nst_daemon.batch; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0


def test_thirty_pictures_match_the_local_batch(
    ray_cluster: str,
    library: Path,
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    argv = ["batch", str(library), "-o", str(out), "--style", STYLE, "--ray"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{COUNT} stylised" in err
    assert_matches(out, reference)
    # run again: everything is done, nothing is computed
    assert main(argv) == 0
    assert f"{COUNT} of {COUNT} already done" in capsys.readouterr().err


def test_an_actor_killed_mid_run_is_restarted_and_every_picture_written_once(
    ray_cluster: str, library: Path, reference: Path, tmp_path: Path
) -> None:
    log, marker, out = tmp_path / "computed.log", tmp_path / "killed", tmp_path / "out"
    victim = 12
    factory = functools.partial(
        LoggingRunner, log=str(log), kill_width=BASE_WIDTH + victim, marker=str(marker)
    )
    job = cluster.make_plan(str(library), str(out))
    report = cluster.run(job, StyleSpec(STYLE), runner_factory=factory)
    assert marker.exists()  # the actor really was killed
    assert len(report.stylised) + len(report.skipped) == COUNT and not report.failed
    assert_matches(out, reference)
    counts = computed(log)
    # the killed picture was computed twice (it died before writing), every other once:
    # the retried batch skipped the pictures the dead actor had already written
    assert counts[victim] == 2
    assert {i: n for i, n in counts.items() if i != victim} == {
        i: 1 for i in range(COUNT) if i != victim
    }
    assert len(pids(log)) >= 3  # two actors, and the restarted one


def test_a_rerun_after_the_driver_was_killed_finishes_the_rest(
    ray_cluster: str,
    library: Path,
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log, out = tmp_path / "computed.log", tmp_path / "out"
    hold_from = BASE_WIDTH + 10
    driver = textwrap.dedent(
        f"""
        import functools, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_cluster
        from ray import cloudpickle
        from nst_daemon import cluster
        from nst_daemon.batch import StyleSpec
        cloudpickle.register_pickle_by_value(test_cluster)
        factory = functools.partial(
            test_cluster.LoggingRunner, log={str(log)!r}, hold_from={hold_from}
        )
        job = cluster.make_plan({str(library)!r}, {str(out)!r})
        cluster.run(job, StyleSpec({STYLE!r}), address={ray_cluster!r},
                    runner_factory=factory)
        """
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env)
    try:
        # wait until both actors hold a picture: from then on the run cannot progress
        deadline = time.monotonic() + 240
        while sum(n for i, n in computed(log).items() if i >= 10) < 2:
            assert proc.poll() is None, "the driver ended early"
            assert time.monotonic() < deadline, "the actors never started"
            time.sleep(0.2)
        first = outputs(out)
        assert 0 < len(first) < COUNT
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    counts = computed(log)
    assert max(counts.values()) == 1  # nothing was computed twice in the first run
    stamps = {name: (out / name).stat().st_mtime_ns for name in first}
    capsys.readouterr()
    # the rerun, with the same command (in this process, on the module's Ray)
    assert main(["batch", str(library), "-o", str(out), "--style", STYLE, "--ray"]) == 0
    err = capsys.readouterr().err
    assert f"{len(first)} of {COUNT} already done" in err
    assert f"{COUNT - len(first)} stylised" in err
    assert_matches(out, reference)
    # the first run's outputs were kept as they were, not computed and written again
    assert {name: (out / name).stat().st_mtime_ns for name in first} == stamps


def test_unreadable_pictures_are_reported_and_the_rest_done(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_pictures(tmp_path / "in", 3)
    (source / "notes.png").write_text("not a picture")
    good = (source / "00.png").read_bytes()
    (source / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    out = tmp_path / "out"
    code = main(
        [
            "batch",
            f"file://{source}",
            "-o",
            str(out),
            "--style",
            STYLE,
            "--ray",
            "--ray-actors",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "notes.png" in err and "cut.png" in err and "could not be stylised" in err
    assert outputs(out) == {"00.png", "01.png", "02.png"}
    assert not partials(out)


def test_a_pyarrow_file_system_is_read_and_written_through_pyarrow(
    ray_cluster: str, library: Path, reference: Path, tmp_path: Path
) -> None:
    """The code path of s3:// and other remote file systems: listing, reading, writing and
    the hidden temporary + move all go through pyarrow.fs (here a SubTreeFileSystem)."""
    from pyarrow import fs as pafs

    root = pafs.SubTreeFileSystem(str(library.parent), pafs.LocalFileSystem())
    source = cluster.Folder("mem://in", "in", root)
    (tmp_path / "out").mkdir()
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    output = cluster.Folder("mem://out", "out", sub)
    with sub.open_output_stream(f"out/.05.png.0123{PARTIAL_SUFFIX}") as stale:
        stale.write(b"half")  # a killed writer's temporary
    assert cluster.prepare_output(output) == 1
    todo, done = cluster.plan(source, output)
    assert len(todo) == COUNT and not done
    report = cluster.run(cluster.Plan(source, output, todo[:8], []), StyleSpec(STYLE), actors=1)
    assert len(report.stylised) == 8
    for task in todo[:8]:
        name = Path(task.target).name
        assert pixels(tmp_path / "out" / name) == pixels(reference / name)
    todo, done = cluster.plan(source, output)
    assert len(done) == 8 and len(todo) == COUNT - 8
    assert not partials(tmp_path / "out")


def test_gatys_runs_one_picture_per_task(ray_cluster: str, tmp_path: Path) -> None:
    source = make_pictures(tmp_path / "in", 2)
    painting = picture(tmp_path / "painting.png", 5)
    out = tmp_path / "out"
    spec_args = ["--style-image", str(painting), "--iterations", "4", "--max-size", "24"]
    job = cluster.make_plan(str(source), str(out))
    from nst_daemon.cli import build_parser
    from nst_daemon.cli.options import style_spec

    args = build_parser().parse_args(["batch", str(source), "-o", str(out), *spec_args])
    spec = style_spec(args)
    assert spec.method == "gatys"
    rows: list[dict] = []
    report = cluster.run(job, spec, actors=1, on_row=rows.append)
    assert report.batch_size == 1 and {row["batch"] for row in rows} == {1}
    assert outputs(out) == {"00.png", "01.png"} and not report.failed
    # the same pixels as the local batch with one thread
    ref = tmp_path / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["batch", str(source), "-o", str(ref), *spec_args, "--local"]) == 0
    finally:
        torch.set_num_threads(threads)
    for name in ("00.png", "01.png"):
        assert pixels(out / name) == pixels(ref / name)


def test_an_unknown_style_stops_the_job_with_a_clear_error(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_pictures(tmp_path / "in", 2)
    out = tmp_path / "out"
    code = main(
        [
            "batch",
            str(source),
            "-o",
            str(out),
            "--style",
            "no-such-style",
            "--ray",
            "--ray-actors",
            "1",
        ]
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("nst: error: no style called 'no-such-style'"), last
    assert "nst styles" in last and "Ray" not in last  # the project's hint, not Ray's trace
    assert not outputs(out)
