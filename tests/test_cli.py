"""The ``nst`` command, run as real processes against a real daemon on a free loopback port.

Styles are random fast-style networks saved by the test (no reference data needed), in a
temporary ``NST_HOME``. Every process runs single-threaded so that the daemon and
``--local`` compute bit-identical pictures and the tests share the machine politely.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from nst_core.transformer_net import save_style_model

from daemon_helpers import environment, free_endpoint, random_net

NST = [sys.executable, "-m", "nst_daemon"]
PARTIAL = ".nst-partial"


def run(
    env: dict[str, str], *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NST, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )


def picture(
    path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGBA", seed: int = 0
) -> Path:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], len(mode)), generator=g, dtype=torch.uint8)
    PILImage.fromarray(pixels.numpy(), mode).save(path)
    return path


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, exactly one line on stderr starting ``nst: error:``, no traceback."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A daemon started with ``nst daemon start``; yields the environment that reaches it."""
    home = tmp_path_factory.mktemp("nst-home")
    save_style_model(
        home / "styles" / "rand.safetensors",
        random_net(0),
        {"title": "Noise", "artist": "A. Random", "year": "2024", "licence": "CC0"},
    )
    env = environment(home, free_endpoint())
    started = run(env, "daemon", "start")
    assert started.returncode == 0, started.stderr
    yield env
    stopped = run(env, "daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr


HELP_COMMANDS = [
    [],
    ["stylize"],
    ["batch"],
    ["styles"],
    ["styles", "import"],
    ["status"],
    ["train"],
    ["daemon"],
    ["weights"],
    ["weights", "fetch"],
    ["weights", "import"],
    ["weights", "show"],
    ["video"],
]


def test_every_command_has_help(tmp_path: Path) -> None:
    env = environment(tmp_path, free_endpoint())
    for command in HELP_COMMANDS:
        result = run(env, *command, "--help", timeout=30)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith("usage: nst"), command
        assert result.stderr == ""
    assert "examples:" in run(env, "stylize", "--help").stdout


def test_daemon_and_local_give_the_same_pixels(daemon: dict[str, str], tmp_path: Path) -> None:
    source = picture(tmp_path / "photo.png")
    via_daemon = run(daemon, "stylize", source, "--style", "rand", "-o", tmp_path / "d.png")
    assert via_daemon.returncode == 0, via_daemon.stderr
    assert via_daemon.stdout.strip() == str(tmp_path / "d.png")
    local = run(daemon, "stylize", source, "--style", "rand", "--local", "-o", tmp_path / "l.png")
    assert local.returncode == 0, local.stderr
    d, loc, src = (PILImage.open(tmp_path / n) for n in ("d.png", "l.png", "photo.png"))
    assert d.mode == "RGBA" and d.size == src.size
    assert d.tobytes() == loc.tobytes()
    assert d.getchannel("A").tobytes() == src.getchannel("A").tobytes()  # alpha kept
    assert d.convert("RGB").tobytes() != src.convert("RGB").tobytes()  # and it did something


def test_output_names(daemon: dict[str, str], tmp_path: Path) -> None:
    a, b = picture(tmp_path / "a.jpg", mode="RGB"), picture(tmp_path / "b.png", seed=1)
    result = run(daemon, "stylize", a, b, "--style", "rand", "--strength", "0.5")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a-rand.png").is_file() and (tmp_path / "b-rand.png").is_file()
    result = run(daemon, "stylize", a, b, "--style", "rand", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-rand.png", "b-rand.png"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["stylize", "{photo}", "--style", "nope"], ["nope", "nst styles"]),
        (["stylize", "{photo}", "--style", "nope", "--local"], ["nope", "nst styles"]),
        (["stylize", "{tmp}/missing.png", "--style", "rand"], ["missing.png", "no such file"]),
        (["stylize", "{tmp}/notes.png", "--style", "rand"], ["notes.png", "not an image"]),
        (["stylize", "{photo}"], ["--style"]),
        (["stylize", "{photo}", "--style", "{tmp}/gone.pth"], ["gone.pth", "not found"]),
        (["stylize", "{photo}", "--style", "rand", "-o", "{tmp}/x.unknown"], ["extension"]),
        (["stylize", "{photo}", "--style", "rand", "--max-size", "4"], ["max_size"]),
        (["batch", "{tmp}/nowhere", "-o", "{tmp}/out", "--style", "rand"], ["not a folder"]),
    ],
)
def test_user_errors_are_one_clean_line(
    daemon: dict[str, str], tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    photo = picture(tmp_path / "photo.png")
    (tmp_path / "notes.png").write_text("not a picture")
    argv = [a.format(photo=photo, tmp=tmp_path) for a in args]
    assert_clean_error(run(daemon, *argv), *needles)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path, free_endpoint())
    result = run(env, "stylize", "x.png", "--style", "rand", "--strength", "7")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


def test_unreachable_daemon_is_a_clean_error(tmp_path: Path) -> None:
    env = environment(tmp_path, free_endpoint())
    assert_clean_error(run(env, "status"), "no daemon answers", "nst daemon start")
    status = run(env, "daemon", "status")
    assert status.returncode == 3 and "not running" in status.stdout


def test_import_a_style_then_use_it(daemon: dict[str, str], tmp_path: Path) -> None:
    model = tmp_path / "mine.pth"
    torch.save(random_net(1).state_dict(), model)  # PyTorch-example layout
    imported = run(daemon, "styles", "import", model, "--name", "mine")
    assert imported.returncode == 0, imported.stderr
    listing = run(daemon, "styles")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert rows["mine"][-1] == "user"
    assert rows["rand"][1:] == ["Noise", "A.", "Random", "2024", "user"]
    photo = picture(tmp_path / "photo.png")
    by_name = run(daemon, "stylize", photo, "--style", "mine", "-o", tmp_path / "n.png")
    assert by_name.returncode == 0, by_name.stderr
    # a model file path is imported under its name (the same network: reused, not refused)
    for _ in range(2):
        by_path = run(daemon, "stylize", photo, "--style", model, "-o", tmp_path / "p.png")
        assert by_path.returncode == 0, by_path.stderr
    n, p = (PILImage.open(tmp_path / f) for f in ("n.png", "p.png"))
    assert n.tobytes() == p.tobytes()
    other = tmp_path / "other" / "mine.pth"
    other.parent.mkdir()
    torch.save(random_net(2).state_dict(), other)
    assert_clean_error(run(daemon, "stylize", photo, "--style", other), "different style", "--name")


def _start_batch(env: dict[str, str], src: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*NST, "batch", str(src), "-o", str(out), "--style", "rand"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_outputs(out: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.png"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)


def _check_outputs(out: Path) -> dict[str, tuple[int, int]]:
    """Every output under its final name is a whole picture; returns (mtime, inode) by name."""
    stamps = {}
    for path in out.glob("*.png"):
        with PILImage.open(path) as img:
            img.load()
            assert img.size == (160, 120)
        stat = path.stat()
        stamps[path.name] = (stat.st_mtime_ns, stat.st_ino)
    return stamps


def _batch_input(tmp_path: Path, count: int) -> tuple[Path, Path]:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(count):
        picture(src / f"img{i:02d}.png", size=(160, 120), mode="RGB", seed=i)
    return src, out


def _finish_and_check(env: dict[str, str], src: Path, out: Path, before: dict) -> None:
    rerun = run(env, "batch", src, "-o", out, "--style", "rand")
    assert rerun.returncode == 0, rerun.stderr
    total = len(list(src.iterdir()))
    assert f"{len(before)} of {total} already done" in rerun.stderr
    after = _check_outputs(out)
    assert sorted(after) == sorted(p.name for p in src.iterdir())
    assert {name: after[name] for name in before} == before  # finished files not redone
    assert not list(out.glob(f".*{PARTIAL}"))
    again = run(env, "batch", src, "-o", out, "--style", "rand")
    assert again.returncode == 0 and _check_outputs(out) == after


def test_batch_resumes_after_the_cli_is_killed(daemon: dict[str, str], tmp_path: Path) -> None:
    src, out = _batch_input(tmp_path, 16)
    proc = _start_batch(daemon, src, out)
    _wait_for_outputs(out, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _check_outputs(out)
    assert 3 <= len(before) < 16
    _finish_and_check(daemon, src, out, before)


def test_batch_resumes_after_the_daemon_is_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    save_style_model(home / "styles" / "rand.safetensors", random_net(0), {})
    env = environment(home, free_endpoint())
    src, out = _batch_input(tmp_path, 16)
    proc = _start_batch(env, src, out)  # starts the daemon itself
    try:
        _wait_for_outputs(out, 3, proc)
        pid = int(next(home.glob("daemon-*.pid")).read_text())
        os.kill(pid, signal.SIGKILL)
        # the CLI notices the closed connection and says so, rather than waiting for a
        # daemon that is gone (the rare kill between two pictures lets it start a new one)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err
        if proc.returncode != 0:
            assert proc.returncode == 1 and "stopped" in err, err
        before = _check_outputs(out)
        assert 3 <= len(before) <= 16
        _finish_and_check(env, src, out, before)  # starts a new daemon
    finally:
        if proc.poll() is None:
            proc.kill()
        run(env, "daemon", "stop")


def test_daemon_start_status_stop(tmp_path: Path) -> None:
    env = environment(tmp_path, free_endpoint())
    assert run(env, "daemon", "status").returncode == 3
    started = run(env, "daemon", "start")
    assert started.returncode == 0, started.stderr
    assert "daemon running at" in started.stdout
    status = run(env, "daemon", "status")
    assert status.returncode == 0 and "running at" in status.stdout
    report = run(env, "status")
    assert report.returncode == 0 and "device" in report.stdout and "idle" in report.stdout
    again = run(env, "daemon", "start")  # already running: fine, same daemon
    assert again.returncode == 0, again.stderr
    stopped = run(env, "daemon", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert run(env, "daemon", "status").returncode == 3


def test_daemon_start_and_stop_with_curve(tmp_path: Path) -> None:
    """A CURVE daemon does not answer a client without keys: `start` still sees it bound."""
    import zmq.auth

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, _ = zmq.auth.create_certificates(keys, "client")
    (allowed / "client.key").write_bytes(Path(client_public).read_bytes())
    env = environment(tmp_path / "home", free_endpoint())
    # a run that waited for the 90 s readiness timeout would be killed at 85 s
    started = run(
        env,
        "daemon",
        "start",
        "--curve-secret",
        server_secret,
        "--curve-clients",
        allowed,
        timeout=85,
    )
    assert started.returncode == 0, started.stderr
    assert "daemon running" in started.stdout
    stopped = run(env, "daemon", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert run(env, "daemon", "status").returncode == 3  # not running
