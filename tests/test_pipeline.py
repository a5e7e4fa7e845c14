"""One stylisation pipeline (``nst_core.pipeline.stylize``) for every front-end.

The engine-level tests check the order of the steps (scale down, paint, scale back,
colours, blend); the process tests run the same job through a real daemon, ``nst
stylize --local`` and ``nst batch`` (with and without the daemon) and compare pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage
from test_cli import picture, run

from nst_core.color import apply_colors, blend
from nst_core.devices import default_device, resolve_device
from nst_core.errors import Cancelled, ImageError, ParameterError
from nst_core.fast import stylize_fast
from nst_core.gatys import GatysParams, stylize_gatys
from nst_core.images import resize
from nst_core.pipeline import processing_size, stylize
from nst_core.progress import CancelToken, Progress
from nst_core.transformer_net import save_style_model
from nst_core.vgg import VGGFeatures

from daemon_helpers import environment, free_endpoint, random_net


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return random_net(4)


def _content(seed: int = 0, size: tuple[int, int] = (45, 60)) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_processing_size() -> None:
    assert processing_size(45, 60, None) == (45, 60)
    assert processing_size(45, 60, 60) == (45, 60)
    assert processing_size(45, 60, 30) == (22, 30)  # 22.5 rounds to even
    assert processing_size(1000, 10, 50) == (50, 1)
    assert processing_size(10, 1000, 50) == (1, 50)  # never a zero side


def test_fast_job_is_the_composition_of_its_steps(net: torch.nn.Module, one_thread: None) -> None:
    content = _content()
    mask = torch.rand(1, 1, 45, 60, generator=torch.Generator().manual_seed(1))
    got = stylize(
        content,
        model=net,
        max_size=32,
        preserve_colors="luminance",
        strength=0.7,
        mask=mask,
        device="cpu",
    )
    small = resize(content, processing_size(45, 60, 32))
    expected = resize(stylize_fast(net, small, device="cpu"), (45, 60))
    expected = blend(apply_colors(expected, content, "luminance"), content, 0.7, mask)
    assert got.shape == content.shape and got.device.type == "cpu"
    assert torch.equal(got, expected)


def test_the_network_sees_the_scaled_picture_and_the_result_is_full_size() -> None:
    seen: list[tuple[int, int]] = []

    def network(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.shape[-2], x.shape[-1]))
        return 1.0 - x

    content = _content(size=(40, 100))
    out = stylize(content, network=network, max_size=50)
    assert seen == [(20, 50)] and out.shape == content.shape
    # a zero mask keeps the original exactly; strength 0 too
    kept = stylize(content, network=network, mask=torch.zeros(1, 1, 40, 100))
    assert torch.equal(kept, content)
    assert torch.equal(stylize(content, network=network, strength=0.0), content)


def test_gatys_job_leaves_colours_and_mask_to_the_pipeline(
    vgg16_weights: Path, one_thread: None
) -> None:
    content = _content(2, (24, 24))
    style = _content(3, (24, 24))
    vgg = VGGFeatures("vgg16", weights=vgg16_weights)
    params = GatysParams.preset("draft", iterations=2)
    mask = torch.zeros(1, 1, 24, 24)
    mask[..., :12] = 1.0
    steps: list[Progress] = []
    got = stylize(
        content,
        method="gatys",
        styles=[(style, 1.0)],
        vgg=vgg,
        gatys=params,
        preserve_colors="histogram",
        mask=mask,
        progress=steps.append,
    )
    painted = stylize_gatys(content, [(style, 1.0)], vgg, params)
    expected = blend(apply_colors(painted, content, "histogram"), content, 1.0, mask)
    assert torch.equal(got, expected)
    assert torch.equal(got[..., 12:], content[..., 12:])  # outside the selection: untouched
    assert steps and steps[-1].step == steps[-1].total == 2


def test_bad_arguments_are_refused_before_any_work(net: torch.nn.Module) -> None:
    content = _content()
    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(ParameterError, match="strength"):
        stylize(content, model=net, strength=1.5)
    with pytest.raises(ParameterError, match="colour mode"):
        stylize(content, model=net, preserve_colors="sepia")
    with pytest.raises(ParameterError, match="style model"):
        stylize(content)
    with pytest.raises(ParameterError, match="VGG"):
        stylize(content, method="gatys", styles=[(content, 1.0)])
    with pytest.raises(ImageError, match="RGB"):
        stylize(content[:, :1], model=net)
    with pytest.raises(ImageError, match="mask"):
        stylize(content, model=net, mask=torch.ones(1, 1, 5, 5))
    with pytest.raises(Cancelled):
        stylize(content, model=net, cancel=cancelled)


def test_one_device_policy() -> None:
    assert resolve_device(None) == torch.device(default_device())
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ParameterError, match="unknown device"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            resolve_device("cuda")


# --- the same job through every front-end, in real processes --------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("nst-home")
    save_style_model(home / "styles" / "rand.safetensors", random_net(5), {"title": "Noise"})
    env = environment(home, free_endpoint())
    started = run(env, "daemon", "start")
    assert started.returncode == 0, started.stderr
    yield env
    stopped = run(env, "daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr


JOB = ["--style", "rand", "--max-size", "40", "--strength", "0.8", "--preserve-colors"]


def test_daemon_local_and_batch_give_identical_pixels(
    daemon: dict[str, str], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    source = picture(photos / "photo.png", size=(70, 50), mode="RGBA", seed=3)
    outputs = {
        "daemon": tmp_path / "daemon.png",
        "local": tmp_path / "local.png",
        "batch": tmp_path / "batch" / "photo.png",
        "batch-local": tmp_path / "batch-local" / "photo.png",
    }
    commands = {
        "daemon": ["stylize", source, *JOB, "-o", outputs["daemon"]],
        "local": ["stylize", source, *JOB, "--local", "-o", outputs["local"]],
        "batch": ["batch", photos, "-o", outputs["batch"].parent, *JOB],
        "batch-local": ["batch", photos, "-o", outputs["batch-local"].parent, *JOB, "--local"],
    }
    for name, command in commands.items():
        result = run(daemon, *command)
        assert result.returncode == 0, (name, result.stderr)
    pixels = {name: PILImage.open(path) for name, path in outputs.items()}
    original = PILImage.open(source)
    for name, image in pixels.items():
        assert image.mode == "RGBA" and image.size == original.size, name
        assert image.tobytes() == pixels["daemon"].tobytes(), name
    assert pixels["daemon"].getchannel("A").tobytes() == original.getchannel("A").tobytes()
    assert pixels["daemon"].convert("RGB").tobytes() != original.convert("RGB").tobytes()
