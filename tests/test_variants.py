"""A style's full and lite networks, chosen by ``params.speed`` (``nst_core.styles``'s
``choose_variant``): the catalogue lists the variants, the daemon runs the one asked for
and says which, through real daemon processes and the ``nst`` command.

No lite model ships yet: the tests save their own (random, lively networks of the full and
the lite architecture) into a temporary user styles folder. Every process runs
single-threaded, so the daemon and an in-process run of one model file give identical
pixels.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from nst_client.errors import DaemonError
from nst_client.params import FastParams
from nst_client.protocol import Image, Result, StylizeRequest
from nst_core.distill import LITE_BLOCKS, LITE_WIDTHS
from nst_core.errors import ParameterError
from nst_core.styles import SPEEDS, choose_variant, list_styles
from nst_core.transformer_net import TransformerNet, save_style_model

from daemon_helpers import DaemonProcess, noise_image

DUO, SOLO = "duo", "solo"  # a style with a lite network beside its full one, one without


def lively(net: TransformerNet, seed: int) -> TransformerNet:
    """Random weights whose output is not clamped flat (the nets' output is 0..255)."""
    torch.manual_seed(seed)
    for p in net.parameters():
        p.data.normal_(0.0, 0.1)
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(40.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    return net


def make_styles(home: Path) -> dict[str, Path]:
    """The model files: ``duo`` (full), ``duo.lite``, ``solo`` (full only)."""
    styles = home / "styles"
    files = {
        "duo": save_style_model(
            styles / f"{DUO}.safetensors", lively(TransformerNet(), 1), {"name": DUO}
        ),
        "duo.lite": save_style_model(
            styles / f"{DUO}.lite.safetensors",
            lively(TransformerNet(LITE_WIDTHS, LITE_BLOCKS), 2),
            {"name": DUO, "variant": "lite"},
        ),
        "solo": save_style_model(
            styles / f"{SOLO}.safetensors", lively(TransformerNet(), 3), {"name": SOLO}
        ),
    }
    return files


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("nst-home")
    make_styles(home)
    return home


@pytest.fixture(scope="module")
def daemon(home: Path) -> Iterator[DaemonProcess]:
    with DaemonProcess(home, args=["--device", "cpu"]) as d:
        yield d


@pytest.fixture(scope="module")
def one_thread_here() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the daemon runs: identical pixels
    yield
    torch.set_num_threads(before)


def in_process(model_file: Path, image: Image) -> bytes:
    """``image`` stylised by one model file, straight through the engine's pipeline."""
    from nst_core.images import from_pixels, to_pixels
    from nst_core.pipeline import stylize
    from nst_core.transformer_net import load_style_model

    rgb, alpha = from_pixels(image.data, image.width, image.height, image.channels, image.dtype)
    styled = stylize(rgb, method="fast", model=load_style_model(model_file), device="cpu")
    return to_pixels(styled, alpha, image.channels, image.dtype)


def run_speed(daemon: DaemonProcess, style: str, image: Image, **params: object) -> Result:
    with daemon.client() as client:
        return client.stylize(StylizeRequest(image, style, params=FastParams(**params)))


IMAGE = noise_image(64, 64, 3, seed=7)


def test_the_rule(home: Path) -> None:
    full, lite = home / "styles" / f"{DUO}.safetensors", home / "styles" / f"{DUO}.lite.safetensors"
    solo = home / "styles" / f"{SOLO}.safetensors"
    for device in ("cpu", torch.device("cpu")):
        assert choose_variant(full, "auto", device) == ("lite", lite)
    for device in ("cuda", "cuda:1", torch.device("mps")):
        assert choose_variant(full, "auto", device) == ("full", full)
    for device in ("cpu", "cuda"):
        assert choose_variant(full, "fast", device) == ("lite", lite)
        assert choose_variant(full, "best", device) == ("full", full)
        for speed in SPEEDS:
            assert choose_variant(solo, speed, device) == ("full", solo)
    with pytest.raises(ParameterError, match="turbo"):
        choose_variant(full, "turbo", "cpu")


def test_the_rule_takes_a_catalogue_entry(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NST_HOME", str(home))
    info = {s.name: s for s in list_styles()}
    assert set(info[DUO].variants) == {"full", "lite"} and set(info[SOLO].variants) == {"full"}
    assert choose_variant(info[DUO], "fast", "cpu").path == info[DUO].variants["lite"]
    assert choose_variant(info[SOLO], "fast", "cpu").path == info[SOLO].path


def test_styles_reply_lists_the_variants(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        entries = {s.name: s for s in client.styles()}
        assert "speed" in client.hello().capabilities
    assert entries[DUO].variants == ("full", "lite")
    assert entries[SOLO].variants == ("full",)
    assert f"{DUO}.lite" not in entries  # the lite file is a variant, not a style


def test_best_and_fast_run_the_full_and_the_lite_network(
    daemon: DaemonProcess, home: Path, one_thread_here: None
) -> None:
    styles = home / "styles"
    best = run_speed(daemon, DUO, IMAGE, speed="best")
    fast = run_speed(daemon, DUO, IMAGE, speed="fast")
    assert (best.variant, fast.variant) == ("full", "lite")
    assert best.image is not None and fast.image is not None
    assert best.image.data == in_process(styles / f"{DUO}.safetensors", IMAGE)
    assert fast.image.data == in_process(styles / f"{DUO}.lite.safetensors", IMAGE)
    assert best.image.data != fast.image.data
    assert len(set(best.image.data)) > 16 and len(set(fast.image.data)) > 16  # not flat


def test_auto_on_a_cpu_daemon_runs_the_lite_network(daemon: DaemonProcess) -> None:
    auto = run_speed(daemon, DUO, IMAGE)  # speed "auto": the default, left off the wire
    assert auto.variant == "lite"
    assert auto.image == run_speed(daemon, DUO, IMAGE, speed="fast").image
    run_speed(daemon, DUO, IMAGE, speed="best")
    with daemon.client() as client:
        resident = client.status().models.fast
    assert f"{DUO} (lite)" in resident and DUO in resident  # both networks, told apart


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_on_a_gpu_daemon_runs_the_full_network(home: Path) -> None:
    with DaemonProcess(home, args=["--device", "cuda"]) as gpu:
        assert run_speed(gpu, DUO, IMAGE).variant == "full"
        assert run_speed(gpu, DUO, IMAGE, speed="fast").variant == "lite"


def test_fast_without_a_lite_network_runs_the_full_one(daemon: DaemonProcess) -> None:
    fast = run_speed(daemon, SOLO, IMAGE, speed="fast")
    best = run_speed(daemon, SOLO, IMAGE, speed="best")
    assert fast.variant == best.variant == "full"
    assert fast.image == best.image


def test_video_frames_run_the_chosen_network(daemon: DaemonProcess) -> None:
    frames = {
        speed: run_speed(daemon, DUO, IMAGE, speed=speed, clip=f"clip-{speed}", clip_frame=0)
        for speed in ("fast", "best")
    }
    assert frames["fast"].variant == "lite" and frames["best"].variant == "full"
    assert frames["fast"].image != frames["best"].image


def test_a_bad_speed_is_a_bad_parameter(daemon: DaemonProcess) -> None:
    with daemon.client() as client, pytest.raises(DaemonError) as info:
        client.stylize(IMAGE, style=DUO, params={"speed": "turbo"})
    assert info.value.code == "bad_parameter"
    assert "params.speed" in info.value.message and "'auto', 'fast', 'best'" in info.value.message
    with daemon.client() as client:  # the daemon keeps serving
        assert run_speed(daemon, DUO, IMAGE, speed="best").variant == "full"
        assert client.hello().pid == daemon.pid


def nst(daemon: DaemonProcess, *args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nst_daemon", *map(str, args)]
    return subprocess.run(command, env=daemon.env, capture_output=True, text=True, timeout=120)


def test_the_cli_speed_option_and_the_lite_marker(
    daemon: DaemonProcess, home: Path, tmp_path: Path, one_thread_here: None
) -> None:
    from nst_daemon.imagefile import read_image

    photo = tmp_path / "photo.png"
    PILImage.frombytes("RGB", (IMAGE.width, IMAGE.height), IMAGE.data).save(photo)
    out = tmp_path / "best.png"
    done = nst(daemon, "stylize", photo, "--style", DUO, "--speed", "best", "-o", out)
    assert done.returncode == 0, done.stderr
    written = PILImage.open(out).convert("RGB").tobytes()
    full = in_process(home / "styles" / f"{DUO}.safetensors", read_image(photo))
    assert written == full
    assert written != in_process(home / "styles" / f"{DUO}.lite.safetensors", read_image(photo))

    listing = nst(daemon, "styles")
    assert listing.returncode == 0, listing.stderr
    header, *lines = listing.stdout.splitlines()
    assert header.split() == ["NAME", "TITLE", "ARTIST", "YEAR", "SOURCE", "LITE"]
    rows = {line.split()[0]: line.split() for line in lines}
    assert rows[DUO][-1] == "yes" and rows[SOLO][-1] == "user"

    wrong = nst(daemon, "stylize", photo, "--style", DUO, "--speed", "turbo")
    assert wrong.returncode == 2 and "invalid choice: 'turbo'" in wrong.stderr
    gatys = nst(daemon, "stylize", photo, "--style-image", photo, "--speed", "fast")
    assert gatys.returncode == 2 and "--speed chooses the network of a fast style" in gatys.stderr
    help_text = nst(daemon, "stylize", "--help").stdout
    assert "--speed {auto,fast,best}" in help_text and "lite" in help_text
