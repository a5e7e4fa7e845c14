"""Faults: clients that die or freeze mid-job, requests over the limits, memory running
out, broken model and weights files, a busy port and stale pidfiles.

The daemon killed during ``nst batch`` (rerun finishes the rest, nothing corrupt, nothing
redone) is ``tests/test_cli.py::test_batch_resumes_after_the_daemon_is_killed``.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nst_core.transformer_net import save_style_model
from nst_daemon.client import DaemonError
from nst_daemon.lifecycle import state_file

from daemon_helpers import (
    DaemonProcess,
    environment,
    noise_image,
    random_net,
    save_random_style,
    wait_until,
)

MAX_PIXELS = 4_000_000

# A client in its own process (torch-free: it starts fast): submits a Gatys job that
# never ends and a second one that queues behind it, reports when the first runs, then
# keeps consuming events (and pinging) until it is killed or frozen.
CLIENT_SCRIPT = """
import sys
from nst_daemon.client import Client
from nst_daemon.protocol import Image

client = Client(sys.argv[1], autostart=False, timeout=120)
image = Image(64, 64, 3, bytes(range(256)) * 48)
params = {"iterations": 100000, "optimizer": "adam"}
jobs = [client.submit(image, method="gatys", style_image=image, params=params)
        for _ in range(2)]
for event in jobs[0]:
    if event["type"] == "progress" and event["stage"].startswith("gatys"):
        print("running", flush=True)
        break
for event in jobs[0]:
    pass
"""


def save_random_vgg(path: Path) -> Path:
    """VGG16 ``features`` weights of the right shapes, random values (no reference data)."""
    from safetensors.torch import save_file

    from nst_core.vgg import make_features

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(make_features("vgg16").state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good and broken styles; random VGG weights."""
    home = tmp_path_factory.mktemp("faults")
    good = save_random_style(home, "rand")
    data = good.read_bytes()
    styles = home / "styles"
    (styles / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (styles / "garbage.safetensors").write_bytes(os.urandom(4096))
    (styles / "empty.safetensors").write_bytes(b"")
    net = random_net(1)
    net.conv1 = net.conv2  # wrong shapes: not a fast-style network
    save_style_model(styles / "wrongshape.safetensors", net, {})
    save_random_vgg(home / "weights" / "vgg16_features.safetensors")
    return home


@pytest.fixture(scope="module")
def daemon(home: Path) -> Iterator[DaemonProcess]:
    env = {"TORCH_HOME": str(home / "torch")}
    with DaemonProcess(home, args=["--max-pixels", str(MAX_PIXELS)], env=env) as daemon:
        yield daemon


def small_job_works(daemon: DaemonProcess, timeout: float = 30) -> bool:
    with daemon.client(timeout=timeout) as client:
        result = client.stylize(noise_image(24, 20, 3, seed=5), style="rand")
    return result["image"].width == 24


def idle(daemon: DaemonProcess) -> bool:
    status = daemon.status()
    return not status["running"] and not status["queue"]


def start_client_process(daemon: DaemonProcess) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, daemon.endpoint],
                            env=daemon.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "running", proc.communicate()
    status = daemon.status()
    assert len(status["running"]) == 1 and len(status["queue"]) == 1, status
    return proc


def test_killed_client_jobs_are_cancelled_within_two_seconds(daemon: DaemonProcess) -> None:
    proc = start_client_process(daemon)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    assert wait_until(lambda: idle(daemon), timeout=2.0), daemon.status()
    freed_after = time.monotonic() - killed
    assert small_job_works(daemon, timeout=10)
    print(f"\nkilled client: its 2 jobs cancelled and the worker free after {freed_after:.2f} s")


def test_frozen_client_jobs_are_cancelled_after_its_silence(daemon: DaemonProcess) -> None:
    proc = start_client_process(daemon)
    try:
        proc.send_signal(signal.SIGSTOP)  # connected, but no more pings
        stopped = time.monotonic()
        assert daemon.status()["running"]
        with daemon.client() as client:
            limit = client.request("hello")["heartbeat"]["client_silence_s"]
        assert wait_until(lambda: idle(daemon), timeout=limit + 3.0), daemon.status()
        assert time.monotonic() - stopped >= limit - 1.5  # not before the client went quiet
        assert small_job_works(daemon)
    finally:
        proc.kill()
        proc.wait()


def test_request_over_the_pixel_limit_is_refused_and_the_next_job_runs(
    daemon: DaemonProcess,
) -> None:
    with daemon.client(timeout=30) as client:
        with pytest.raises(DaemonError) as caught:
            client.stylize(noise_image(2100, 2000, 3, seed=2), style="rand")
        assert caught.value.code == "too_large"
        assert f"{MAX_PIXELS:,}" in caught.value.message
        assert "--max-pixels" in caught.value.message
    assert small_job_works(daemon)


def vm_size_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1])
    raise RuntimeError("no VmSize")


def test_out_of_memory_falls_back_to_tiles_or_fails_cleanly(daemon: DaemonProcess) -> None:
    """Address space capped just above what the daemon uses: an image whose untiled pass
    needs more must come back tiled or as ``out_of_memory``, and the daemon serves on."""
    assert small_job_works(daemon)
    limits = resource.prlimit(daemon.pid, resource.RLIMIT_AS)
    cap = (vm_size_kb(daemon.pid) + 200 * 1024) * 1024
    resource.prlimit(daemon.pid, resource.RLIMIT_AS, (cap, limits[1]))
    outcome: dict[str, Any] = {}
    try:
        with daemon.client(timeout=120) as client:
            try:
                result = client.stylize(noise_image(1400, 1400, 3, seed=3), style="rand")
                outcome["result"] = result["image"].width, result["image"].height
            except DaemonError as exc:
                outcome["error"] = exc.code, exc.message
        assert small_job_works(daemon)  # still under the cap
    finally:
        resource.prlimit(daemon.pid, resource.RLIMIT_AS, limits)
    assert outcome.get("result") == (1400, 1400) or outcome["error"][0] == "out_of_memory", \
        outcome
    assert daemon.alive()
    print(f"\nout of memory: {outcome}")


@pytest.mark.parametrize("name", ["truncated", "garbage", "empty", "wrongshape"])
def test_broken_style_file_is_named_and_other_styles_work(
    daemon: DaemonProcess, name: str
) -> None:
    with daemon.client(timeout=30) as client:
        with pytest.raises(DaemonError) as caught:
            client.stylize(noise_image(24, 20, 3, seed=1), style=name)
        assert caught.value.code == "bad_model"
        assert f"{name}.safetensors" in caught.value.message
        listed = [s["name"] for s in client.styles()]
        assert "rand" in listed
    assert small_job_works(daemon)


def test_broken_vgg_weights_are_named_and_fast_styles_work(tmp_path: Path) -> None:
    weights = tmp_path / "vgg16-broken.pth"
    weights.write_bytes(b"PK\x03\x04" + os.urandom(2000))  # looks like a torch zip, is not
    save_random_style(tmp_path, "rand")
    image = noise_image(32, 32, 3, seed=1)
    with DaemonProcess(tmp_path, args=["--vgg-weights", str(weights)]) as daemon:
        with daemon.client(timeout=30) as client, pytest.raises(DaemonError) as caught:
            client.stylize(image, method="gatys", style_image=image, params={"iterations": 2})
        assert caught.value.code == "bad_model"
        assert str(weights) in caught.value.message
        assert small_job_works(daemon)


# --------------------------------------------------------------------------- start-up


def test_busy_port_and_stale_pidfile_give_clear_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale pidfile is not a running daemon, and a port held by another program is a
    one-line refusal. (A second daemon on a served endpoint: tests/test_daemon.py.)"""
    with socket.socket() as other:  # another program holds the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        endpoint = f"tcp://127.0.0.1:{other.getsockname()[1]}"
        monkeypatch.setenv("NST_HOME", str(tmp_path))
        pidfile = state_file(endpoint, "pid")
        dead = subprocess.Popen(["true"])
        dead.wait()
        pidfile.write_text(f"{dead.pid}\n")  # left by a daemon that was killed
        env = environment(tmp_path, endpoint)
        status = subprocess.run([sys.executable, "-m", "nst_daemon", "daemon", "status"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 3 and "not running" in status.stdout, status
        result = subprocess.run(
            [sys.executable, "-m", "nst_daemon.server", "--endpoint", endpoint],
            env=env, capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1
    assert "already in use" in result.stderr and endpoint in result.stderr
    assert "Traceback" not in result.stderr
    assert not pidfile.exists()  # the refused daemon leaves no pidfile behind
