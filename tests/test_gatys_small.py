"""Paint Like on pictures smaller than VGG needs (a small selection): below 16 px on a
side relu5_1 has nothing left, so the engine stretches the picture up to 16 px for the
optimisation and scales the result back. Through the engine and through a real daemon;
random VGG weights (quality is not asserted)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from nst_client.protocol import Image, Progress, Result
from nst_core.gatys import GatysParams, min_side, stylize_gatys
from nst_core.vgg import VGGFeatures, make_features

from daemon_helpers import DaemonProcess, noise_image

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@functools.cache
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return make_features("vgg16").state_dict()


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures("vgg16", LAYERS, weights=random_state())


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_min_side_follows_the_deepest_layer(vgg) -> None:
    assert min_side(vgg, LAYERS) == 16  # four poolings before relu5_1
    assert min_side(vgg, ["relu4_2", "relu1_1"]) == 8
    assert min_side(vgg, ["relu1_1"]) == 1


@pytest.mark.parametrize("height,width", [(12, 12), (1, 300), (300, 1), (15, 40)])
def test_tiny_content_is_stylised_at_its_own_size(vgg, height, width) -> None:
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, height, width, generator=gen)
    style = torch.rand(1, 3, 40, 40, generator=gen)
    mask = torch.ones(1, 1, height, width)
    mask[..., : max(1, height // 2), :] = 0
    events = []
    out = stylize_gatys(
        content,
        [(style, 1.0)],
        vgg,
        GatysParams.preset("draft", iterations=2),
        mask=mask,
        progress=events.append,
    )
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert torch.isfinite(out).all()
    keep = mask.expand_as(content) == 0
    assert torch.allclose(out[keep], content[keep], atol=1e-6)  # the mask still holds
    assert events and events[-1].step == events[-1].total


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    from safetensors.torch import save_file

    home: Path = tmp_path_factory.mktemp("small")
    (home / "weights").mkdir(parents=True)
    save_file(random_state(), str(home / "weights" / "vgg16_features.safetensors"))
    with DaemonProcess(home) as process:
        yield process


@pytest.mark.parametrize("width,height", [(12, 12), (300, 1), (1, 300)])
def test_tiny_selection_through_the_daemon(daemon: DaemonProcess, width, height) -> None:
    image = noise_image(width, height, 4, seed=width)  # RGBA: alpha passes through
    with daemon.client(timeout=300) as client:
        events = list(
            client.submit(
                image,
                method="gatys",
                style_image=noise_image(40, 30, 3, seed=2),
                params={"quality": "draft", "iterations": 2},
            )
        )
    result = events[-1]
    assert isinstance(result, Result), result
    out = result.image
    assert isinstance(out, Image) and (out.width, out.height, out.channels) == (width, height, 4)
    assert out.data[3::4] == image.data[3::4]
    steps = [e for e in events if isinstance(e, Progress) and e.total]
    assert steps and {e.total for e in steps} == {steps[-1].step}
    assert {e.stage for e in steps} <= {"painting", "rough layout", "refining", "details"}
