"""The plug-in's GIMP-free parts and its installer, on the host (no GIMP needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nst_client.errors import DaemonError, DaemonUnavailable
from nst_client.protocol import Progress, Status

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "gimp_plugin"
sys.path.insert(0, str(PLUGIN_SRC))

import daemon_link  # noqa: E402
import install_plugin  # noqa: E402
from regions import Rect, region_to_send  # noqa: E402

from daemon_helpers import DaemonProcess, free_endpoint, noise_image  # noqa: E402


def test_whole_layer_without_selection():
    assert region_to_send(Rect(5, 7, 40, 30), None) == Rect(0, 0, 40, 30)


def test_selection_grows_by_margin_and_is_clipped_to_the_layer():
    layer = Rect(0, 0, 160, 120)
    assert region_to_send(layer, Rect(60, 40, 30, 20)) == Rect(28, 8, 94, 84)
    assert region_to_send(layer, Rect(60, 40, 30, 20), margin=0) == Rect(60, 40, 30, 20)
    assert region_to_send(layer, Rect(150, 110, 30, 30), margin=4) == Rect(146, 106, 14, 14)


def test_selection_on_a_layer_with_offset_gives_layer_coordinates():
    layer = Rect(100, 50, 80, 60)
    assert region_to_send(layer, Rect(110, 60, 10, 10), margin=5) == Rect(5, 5, 20, 20)


def test_selection_beside_the_layer_gives_nothing():
    assert region_to_send(Rect(100, 50, 80, 60), Rect(0, 0, 50, 40), margin=40) is None


def test_progress_text_names_stage_step_and_time_left():
    text = daemon_link.progress_text(Progress(stage="rough layout", step=3, total=10, eta_s=75))
    assert text == "Rough layout, step 3 of 10, about 1 min 15 s left"
    assert daemon_link.progress_text(Progress(stage="loading")) == "Loading the style"
    assert daemon_link.progress_text(Progress(stage="stylize", step=0, total=1)) == "Stylising"
    tiles = daemon_link.progress_text(Progress(stage="stylize", step=2, total=6))
    assert tiles == "Stylising, tile 3 of 6"


def test_errors_are_explained_in_plain_words():
    assert "not running" in daemon_link.describe_error(DaemonUnavailable("x"))
    message = daemon_link.describe_error(DaemonError("out_of_memory", "CUDA out of memory"))
    assert "Output size limit" in message and "CUDA out of memory" in message
    weights = daemon_link.describe_error(DaemonError("weights_missing", "run `nst weights fetch`"))
    assert weights.count(".") == 1 and "nst " not in weights  # one sentence, no terminal
    assert "oops" in daemon_link.describe_error(DaemonError("internal", "oops"))


def test_a_daemon_that_stops_mid_job_is_not_called_not_running(tmp_path):
    """A real daemon killed under a running Gatys job: the plug-in says it stopped."""
    with DaemonProcess(tmp_path) as daemon, daemon.client(timeout=30) as client:
        job = client.submit(
            noise_image(32, 32, 3, seed=1),
            method="gatys",
            style_image=noise_image(16, 16, 3, seed=2),
            params={"iterations": 100000, "optimizer": "adam"},
        )
        for event in job:
            if isinstance(event, Progress) and event.step >= 1:
                break
        daemon.kill(signal.SIGKILL)
        with pytest.raises(DaemonError) as caught:
            for _ in job:
                pass
    message = daemon_link.describe_error(caught.value)
    assert caught.value.code == "daemon_unavailable", caught.value
    assert "stopped during the job" in message and "not running" not in message, message
    assert message.count(".") == 1  # one sentence


def test_style_list_falls_back_to_the_cache_when_the_daemon_is_down(tmp_path, monkeypatch):
    cache = tmp_path / "styles-cache.json"
    cache.write_text(json.dumps([["starry", "Starry Night"]]))  # the installer's pairs
    monkeypatch.setattr(daemon_link, "STYLE_CACHE", cache)
    monkeypatch.setenv("NST_ENDPOINT", free_endpoint())
    styles, state = daemon_link.known_styles()
    assert state == daemon_link.DOWN
    assert [(s.name, s.title) for s in styles] == [("starry", "Starry Night")]


def test_layer_names_are_short():
    assert daemon_link.short_name("Paint Like: The Starry Night") == "Paint Like: The Starry Night"
    long = daemon_link.short_name("Paint Like: " + "a very long painting name " * 3)
    assert len(long) == 32 and long.endswith("…")


def run_installer(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "PATH": "/usr/bin:/bin"}
    env.pop("XDG_CONFIG_HOME", None)
    cmd = [sys.executable, str(PLUGIN_SRC / "install_plugin.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_installer_copies_plugin_client_and_config(tmp_path):
    plugins = tmp_path / "plug-ins"
    vendor = plugins / "neural_style" / "vendor"
    vendor.mkdir(parents=True)  # wheels already vendored: no download in tests
    (vendor / ".nst-vendored").write_text(install_plugin.vendor_stamp("3.12"))
    args = [
        "--plugins-dir",
        str(plugins),
        "--python-version",
        "3.12",
        "--daemon-command",
        "/opt/nst/bin/nst",
        "--endpoint",
        "tcp://127.0.0.1:5555",
    ]
    for _ in range(2):  # idempotent
        done = run_installer(tmp_path, *args)
        assert done.returncode == 0, done.stderr
    folder = plugins / "neural_style"
    assert os.access(folder / "neural_style.py", os.X_OK)
    for name in (
        "layer_io.py",
        "daemon_link.py",
        "regions.py",
        "dialogs.py",
        "help/en/index.html",
        "help/en/gimp-help.xml",
    ):
        assert (folder / name).is_file()
    for name in ("__init__.py", "protocol.py", "client.py", "names.py", "text.py"):
        assert (vendor / "nst_client" / name).is_file()
    assert sorted(p.name for p in (vendor / "nst_client").glob("*.py")) == sorted(
        p.name for p in (PLUGIN_SRC.parent / "nst_client").glob("*.py")
    )  # whole
    config = json.loads((folder / "config.json").read_text())
    assert config == {
        "endpoint": "tcp://127.0.0.1:5555",
        "daemon_command": ["/opt/nst/bin/nst", "daemon", "start"],
    }
    assert "already in" in done.stdout
    done = run_installer(tmp_path, "--plugins-dir", str(plugins), "--uninstall")
    assert done.returncode == 0 and not folder.exists()


def test_installer_finds_gimp_config_folders(tmp_path):
    (tmp_path / ".config" / "GIMP" / "3.0").mkdir(parents=True)
    flatpak = tmp_path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
    flatpak.mkdir(parents=True)
    done = run_installer(tmp_path, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert "system GIMP: no plug-in in" in done.stdout
    assert f"Flatpak GIMP: no plug-in in {flatpak / 'plug-ins' / 'neural_style'}" in done.stdout


def test_installer_without_gimp_says_so(tmp_path):
    done = run_installer(tmp_path)
    assert done.returncode == 0
    assert "no GIMP 3 found" in done.stdout


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_wheel_platforms_are_manylinux_tags(machine, monkeypatch):
    monkeypatch.setattr(install_plugin.platform, "machine", lambda: machine)
    tags = install_plugin.wheel_platforms()
    assert f"manylinux2014_{machine}" in tags
    assert all(tag.endswith(machine) for tag in tags)


def test_status_text_summarises_the_daemon():
    status = Status.read(
        {
            "device": "cuda:0",
            "running": [{"method": "gatys", "state": "running", "step": 5, "total": 100}],
            "queue": [{}, {}],
            "models": {"vgg": True, "fast": ["starry-night"]},
            "uptime_s": 600,
            "pid": 42,
        }
    )
    text = daemon_link.status_text(status)
    assert "Device: cuda:0" in text
    assert "gatys running, step 5/100" in text
    assert "Waiting jobs: 2" in text and "Fast styles loaded: starry-night" in text
    assert "not running" in daemon_link.status_text(None)
