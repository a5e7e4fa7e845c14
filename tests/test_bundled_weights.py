"""The bundled VGG16: the file and its credit, what ships in a wheel, and Paint Like on a
fresh data dir with no weights step and no network (in process and through a daemon), the
weights named in hello/status, and the precedence of fetched/imported weights."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_VGG16, SHARED
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import save_file

from nst_client.client import Client
from nst_core.images import load_image
from nst_core.vgg import VGGFeatures, make_features
from nst_core.weights import (
    BUNDLED_NAME,
    BUNDLED_SHA256,
    expected_shapes,
    load_features_state,
    stored_path,
)
from nst_daemon import lifecycle
from nst_daemon.server import Server, ServerConfig

from daemon_helpers import environment, free_endpoint, wait_until

ROOT = Path(__file__).resolve().parents[1]
CREDIT = (
    "VGG16 weights by K. Simonyan and A. Zisserman (Visual Geometry Group, University of "
    "Oxford), licensed CC BY 4.0, https://creativecommons.org/licenses/by/4.0/; converted to "
    "fp16 and to torchvision's layout and input convention"
)

# Loaded by every Python process of a test through PYTHONPATH: no connection leaves the
# machine and no host name is looked up, so a download attempt fails at once.
NO_NETWORK = textwrap.dedent("""
    import ipaddress, socket

    def _local(host):
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host == "localhost"

    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise OSError(f"network disabled for this test: {address}")
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _local(str(host)):
            raise socket.gaierror(f"network disabled for this test: {host}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
""")


def _words(text: str) -> str:
    return " ".join(text.replace(">", " ").split())


def test_bundled_file_is_the_credited_fp16_vgg16() -> None:
    data = BUNDLED_VGG16.read_bytes()
    assert hashlib.sha256(data).hexdigest() == BUNDLED_SHA256["vgg16"]
    assert 25 * 2**20 < len(data) < 32 * 2**20  # ~29 MB: fp16, features only
    with safe_open(str(BUNDLED_VGG16), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
        meta = f.metadata()
    assert shapes == expected_shapes("vgg16") and dtypes == {"F16"}
    assert meta["arch"] == "vgg16" and "CC BY 4.0" in meta["source"]
    arch, state = load_features_state(BUNDLED_VGG16)
    assert arch == "vgg16" and all(t.dtype == torch.float32 for t in state.values())

    licence = BUNDLED_VGG16.parent / "LICENCE.txt"
    assert CREDIT in _words(licence.read_text())
    assert BUNDLED_SHA256["vgg16"] in licence.read_text()
    assert CREDIT in _words((ROOT / "docs" / "styles.md").read_text())


def test_bundled_file_matches_the_reference_weights() -> None:
    """The fp16 rounding changes the features by well under 1 %."""
    reference = SHARED / "weights" / "vgg16_features.safetensors"
    if not reference.is_file():
        pytest.skip(f"reference data not available: {reference}")
    layers = ["relu1_2", "relu3_3", "relu5_1"]
    bundled = VGGFeatures("vgg16", layers, BUNDLED_VGG16)
    full = VGGFeatures("vgg16", layers, reference)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    a, b = bundled(x), full(x)
    for name in layers:
        assert (a[name] - b[name]).norm() / b[name].norm() < 5e-3, name
    assert b["relu1_2"].mean() > 10  # the Oxford weights' scale (see docs/styles.md)


def test_package_data_and_a_wheel_carry_the_file(tmp_path: Path) -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["nst_core"]
    assert "bundled_vgg/*.safetensors" in patterns and "bundled_vgg/LICENCE.txt" in patterns
    src = tmp_path / "src"  # a clean copy: building in the checkout would leave build/
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("nst_client", "nst_core", "nst_daemon"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 and "No module named pip" in result.stderr:
        pytest.skip("pip is not installed in this environment")
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "nst_core/bundled_vgg/LICENCE.txt" in names
        with z.open("nst_core/bundled_vgg/vgg16_features.safetensors") as f:
            assert hashlib.sha256(f.read()).hexdigest() == BUNDLED_SHA256["vgg16"]


# --------------------------------------------------------------------------- fresh data dir


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A picture, a painting, an empty data dir and torch cache, and no network."""
    photo = Image.linear_gradient("L").resize((48, 40)).convert("RGB")
    ImageDraw.Draw(photo).ellipse((10, 8, 34, 30), fill=(200, 40, 40))
    photo.save(tmp_path / "photo.png")
    painting = Image.new("RGB", (48, 48), (240, 200, 20))
    draw = ImageDraw.Draw(painting)
    for x in range(-48, 48, 8):
        draw.line((x, 0, x + 48, 48), fill=(20, 40, 200), width=3)
    painting.save(tmp_path / "painting.png")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    env = environment(tmp_path / "home", free_endpoint())
    env.update(
        TORCH_HOME=str(tmp_path / "torch"), PYTHONPATH=str(guard), NST_HOME=str(tmp_path / "home")
    )
    return tmp_path, env


def nst(
    env: dict[str, str], cwd: Path, *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "nst_daemon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


GATYS = (
    "stylize",
    "photo.png",
    "--style-image",
    "painting.png",
    "--iterations",
    "12",
    "--quality",
    "draft",
)


def painted(folder: Path, name: str) -> float:
    """How far the result is from the photo (mean absolute difference, 0..255)."""
    photo, _ = load_image(folder / "photo.png")
    result, _ = load_image(folder / name)
    assert result.shape == photo.shape
    return (result - photo).abs().mean().item() * 255


def test_gatys_on_a_fresh_data_dir_in_process_without_network(fresh) -> None:
    folder, env = fresh
    blocked = nst(env, folder, "weights", "fetch", check=False, timeout=120)
    assert blocked.returncode != 0 and "network disabled" in blocked.stderr  # the guard works

    shown = nst(env, folder, "weights", "show")
    assert "in use: bundled Oxford VGG16" in shown.stdout
    nst(env, folder, *GATYS, "--local", "-o", "out.png")
    assert painted(folder, "out.png") > 3
    assert not any((folder / "home" / "weights").glob("*"))  # nothing fetched or stored
    assert not (folder / "torch").exists()


def test_gatys_through_a_daemon_names_the_bundled_weights(fresh, monkeypatch) -> None:
    folder, env = fresh
    endpoint = env["NST_ENDPOINT"]
    monkeypatch.setenv("NST_HOME", env["NST_HOME"])  # where lifecycle finds the pidfile
    try:
        nst(env, folder, *GATYS, "-o", "out.png")  # starts its own daemon
        assert painted(folder, "out.png") > 3
        status = nst(env, folder, "status").stdout
        assert f"weights  bundled {BUNDLED_NAME}" in status
        assert "VGG weights: bundled Oxford VGG16" in nst(env, folder, "daemon", "status").stdout
    finally:
        with Client(endpoint, autostart=False, timeout=10) as client:
            hello, reply = client.hello(), client.status()
            client.shutdown()
    assert wait_until(lambda: lifecycle.running_pid(endpoint) is None, 20)
    expected = {
        "arch": "vgg16",
        "source": "bundled",
        "name": BUNDLED_NAME,
        "path": str(BUNDLED_VGG16),
    }
    assert hello.vgg_weights == expected and reply.vgg_weights == expected
    assert reply.models.vgg  # the Gatys job loaded it
    assert not (folder / "home" / "weights").exists()


def test_imported_weights_take_precedence_over_the_bundled_ones(fresh, monkeypatch) -> None:
    folder, env = fresh
    torch.manual_seed(3)
    mine = folder / "my-vgg16.safetensors"
    save_file(make_features("vgg16").state_dict(), str(mine))
    out = nst(env, folder, "weights", "import", str(mine)).stdout
    assert "precedence over the bundled weights" in out
    monkeypatch.setenv("NST_HOME", env["NST_HOME"])
    stored = stored_path("vgg16")
    assert stored.is_file()
    shown = nst(env, folder, "weights", "show").stdout
    assert f"in use: imported/fetched {stored}" in shown

    def described(vgg_weights: Path | None) -> dict:
        server = Server(ServerConfig(endpoint=env["NST_ENDPOINT"], vgg_weights=vgg_weights))
        try:
            hello = server.hello_info().vgg_weights
            assert server.models.vgg().weights_choice.path == Path(hello["path"])
            return hello
        finally:
            server.context.term()

    assert described(None) == {
        "arch": "vgg16",
        "source": "data_dir",
        "name": stored.name,
        "path": str(stored),
    }
    assert described(BUNDLED_VGG16)["source"] == "explicit"  # --vgg-weights beats both
    stored.unlink()  # deleting it goes back to the bundled weights
    assert described(None)["source"] == "bundled"
    assert json.loads(json.dumps(described(None)))  # plain wire types
