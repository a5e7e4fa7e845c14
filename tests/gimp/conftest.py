"""Fixtures for end-to-end tests in real GIMP 3: a Debian chroot with GIMP, the plug-in
installed by the project's own installer, and a real daemon on a free loopback port.

GIMP runs headless (``gimp-console-3.0``) inside the chroot; the chroot shares the host's
network, so the plug-in inside talks to the daemon outside. Batch scripts (Python-Fu) write
what they see into a folder that the tests read back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon_helpers import DaemonProcess, free_endpoint

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).resolve().parent / "build_chroot.sh"
PRELUDE = Path(__file__).resolve().parent / "gimp_prelude.py"
CHROOT_HOME = "/root"
PLUGINS_DIR = f"{CHROOT_HOME}/.config/GIMP/3.0/plug-ins"
GIMP_PYTHON = "3.13"
STYLE_NAME = "test-random"
STYLE_TITLE = "Test Random"
VGG_WEIGHTS = REPO / "nst_core" / "bundled_vgg" / "vgg16_features.safetensors"  # bundled
MAX_PIXELS = 20_000  # the daemon refuses larger images: the "too large" case uses 200 x 150
PLUGIN_LOG = "plugin-log.jsonl"  # the plug-in's trace of what its dialogs showed
SKIP_CODES = {2: "building the GIMP chroot needs root", 3: "debootstrap cannot be installed"}


def chroot_dir() -> Path:
    default = Path.home() / ".cache" / "neural-style" / "gimp-chroot"
    return Path(os.environ.get("NST_GIMP_CHROOT") or default)


@dataclass
class GimpRun:
    returncode: int
    output: str
    results: dict


@dataclass
class GimpChroot:
    root: Path

    def host_path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def command(self, program: list[str], **env: str) -> list[str]:
        """``program`` run inside the chroot with a clean environment plus ``env``."""
        base = {"HOME": CHROOT_HOME, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        variables = [f"{k}={v}" for k, v in {**base, **env}.items()]
        return ["chroot", str(self.root), "/usr/bin/env", "-i", *variables, *program]

    def gimp(
        self,
        workdir: str,
        endpoint: str,
        display: str | None = None,
        interpreter: str = "python-fu-eval",
    ) -> list[str]:
        """GIMP running the batch script given on stdin, then quitting."""
        if display:
            program, env = ["gimp-3.0", "-df", "--no-splash"], {"DISPLAY": display}
        else:
            program, env = ["gimp-console-3.0", "-idf"], {}
        program += ["--batch-interpreter", interpreter, "-b", "-", "--quit"]
        return self.command(
            program,
            NST_ENDPOINT=endpoint,
            NST_TEST_DIR=workdir,
            NST_PLUGIN_LOG=f"{workdir}/{PLUGIN_LOG}",
            **env,
        )

    def plugin_log(self, workdir: str) -> list[dict]:
        """What the plug-in's dialogs reported (``$NST_PLUGIN_LOG``), oldest first."""
        try:
            lines = (self.host_path(workdir) / PLUGIN_LOG).read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for_log(
        self,
        workdir: str,
        proc: subprocess.Popen,
        accept,
        timeout: float = 120,
        what: str = "a plug-in log entry",
    ) -> dict:
        """The first plug-in log entry for which ``accept(entry)`` is true, once written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.plugin_log(workdir):
                if accept(entry):
                    return entry
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        log = self.plugin_log(workdir)
        proc.kill()
        raise AssertionError(
            f"no {what} in the plug-in log: {log[-5:]}\n{proc.stdout.read()[-4000:]}"
        )

    def results(self, workdir: str) -> dict:
        results_file = self.host_path(workdir) / "results.json"
        try:
            return json.loads(results_file.read_text())
        except (OSError, ValueError):  # not written yet, or being written
            return {}

    def run(
        self, script: str, workdir: str, endpoint: str, timeout: float = 300, scheme: bool = False
    ) -> GimpRun:
        """Run ``gimp-console`` with the prelude plus ``script`` (Python-Fu) on stdin.

        ``workdir`` is a folder inside the chroot shared with the test; the scripts record
        findings with ``record(key, value)``, which end up in ``GimpRun.results``.
        ``scheme``: ``script`` is Script-Fu instead, run as it is.
        """
        if scheme:
            source, interpreter = script, "plug-in-script-fu-eval"
        else:
            source, interpreter = PRELUDE.read_text() + "\n" + script, "python-fu-eval"
        done = subprocess.run(
            self.gimp(workdir, endpoint, interpreter=interpreter),
            input=source,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return GimpRun(done.returncode, done.stdout + done.stderr, self.results(workdir))

    def start_gui(self, script: str, workdir: str, endpoint: str, display: str):
        """GIMP with its UI on ``display``, running ``script``; the caller waits for it."""
        proc = subprocess.Popen(
            self.gimp(workdir, endpoint, display),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc.stdin.write(PRELUDE.read_text() + "\n" + script)
        proc.stdin.close()
        return proc

    def wait_for(self, workdir: str, key: str, proc: subprocess.Popen, timeout: float = 120):
        """The record ``key`` of a running GIMP's batch script, once it is written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            results = self.results(workdir)
            if key in results:
                return results[key]
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        proc.kill()
        raise AssertionError(f"GIMP did not record {key!r}:\n{proc.stdout.read()[-4000:]}")

    def xdotool(self, display: str, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            self.command(["xdotool", *args], DISPLAY=display),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 or not check, f"xdotool {args}: {done.stderr}"
        return done.stdout.strip()

    def screenshot(self, display: str, window: str, inside_path: str) -> None:
        cmd = self.command(["import", "-window", window, inside_path], DISPLAY=display)
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _mount(root: Path) -> list[Path]:
    mounted = []
    mounts = ((root / "proc", ["-t", "proc", "proc"]), (root / "dev", ["--bind", "/dev"]))
    for target, args in mounts:
        if subprocess.run(["mountpoint", "-q", str(target)]).returncode != 0:
            subprocess.run(["mount", *args, str(target)], check=True)
            mounted.append(target)
    return mounted


@pytest.fixture(scope="session")
def gimp_chroot() -> Iterator[GimpChroot]:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("GIMP end-to-end tests need root on Linux (they build a chroot)")
    root = chroot_dir()
    done = subprocess.run(["sh", str(BUILD_SCRIPT), str(root)], capture_output=True, text=True)
    if done.returncode in SKIP_CODES:
        pytest.skip(SKIP_CODES[done.returncode])
    assert done.returncode == 0, f"building the GIMP chroot failed:\n{done.stderr[-3000:]}"
    mounted = _mount(root)
    try:
        yield GimpChroot(root)
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(target)])  # a daemon may hold it


@pytest.fixture(scope="session")
def display(gimp_chroot: GimpChroot) -> Iterator[str]:
    """An Xvfb X server inside the chroot, for tests of GIMP's UI."""
    sockets = gimp_chroot.host_path("/tmp/.X11-unix")
    number = next(n for n in range(90, 200) if not (sockets / f"X{n}").exists())
    cmd = gimp_chroot.command(
        ["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"]
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (sockets / f"X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("Xvfb did not start in the GIMP chroot")
        time.sleep(0.2)
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def endpoint() -> str:
    return free_endpoint()


@pytest.fixture(scope="session")
def nst_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir of the test daemon, with one deterministic test style."""
    home = tmp_path_factory.mktemp("nst-home")
    make_test_style(home / "styles")
    return home


@pytest.fixture(scope="session")
def installed_plugin(gimp_chroot: GimpChroot, endpoint: str, nst_home: Path) -> Path:
    """The plug-in, installed into the chroot by ``gimp_plugin/install_plugin.py``."""
    plugins = gimp_chroot.host_path(PLUGINS_DIR)
    cmd = [
        sys.executable,
        str(REPO / "gimp_plugin" / "install_plugin.py"),
        "--plugins-dir",
        str(plugins),
        "--python-version",
        GIMP_PYTHON,
        "--endpoint",
        endpoint,
        "--daemon-command",
        str(Path(sys.executable).parent / "nst"),
    ]
    env = {**os.environ, "NST_HOME": str(nst_home)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return plugins / "neural_style"


def make_test_style(styles_dir: Path) -> Path:
    """A random but deterministic fast-style network with outputs spread over 0..255."""
    import torch

    from nst_core.transformer_net import TransformerNet, save_style_model

    torch.manual_seed(1234)
    net = TransformerNet()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(200.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    meta = {
        "name": STYLE_NAME,
        "title": STYLE_TITLE,
        "artist": "nobody",
        "year": "2026",
        "licence": "test model",
    }
    return save_style_model(styles_dir / f"{STYLE_NAME}.safetensors", net, meta)


@pytest.fixture(scope="session")
def daemon(endpoint: str, nst_home: Path) -> Iterator[str]:
    """A real daemon outside the chroot, with one deterministic test style."""
    args = ["--max-pixels", str(MAX_PIXELS)]
    if VGG_WEIGHTS.is_file():
        args += ["--vgg-weights", str(VGG_WEIGHTS)]
    process = DaemonProcess(nst_home, endpoint, args)
    try:
        process.start(timeout=120)
    except RuntimeError as exc:
        pytest.fail(f"the daemon did not start: {exc}")
    try:
        yield endpoint
    finally:
        process.stop()


@pytest.fixture
def workdir(gimp_chroot: GimpChroot, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh folder inside the chroot (path as GIMP sees it) for one GIMP run."""
    inside = f"/tmp/nst-test-{os.getpid()}-{request.node.name}"
    host = gimp_chroot.host_path(inside)
    shutil.rmtree(host, ignore_errors=True)
    host.mkdir(parents=True)
    yield inside
    shutil.rmtree(host, ignore_errors=True)


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes below ``pid``."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        commands[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace")
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append((child, commands.get(child, "")))
                todo.append(child)
    return found


@pytest.fixture(scope="session")
def host_python_in_chroot(gimp_chroot: GimpChroot) -> Iterator[None]:
    """The checkout and this Python, mounted read-only at the same paths inside the chroot,
    so that the plug-in can start the daemon with the installed ``daemon_command``."""
    mounted = []
    try:
        for source in (REPO, Path(sys.base_prefix)):
            target = gimp_chroot.host_path(str(source))
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
            mounted.append(target)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(target)])  # a daemon may hold it
