"""bf16 loss network: used only where native, and the optimisation follows float32's."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_file

from nst_core import precision
from nst_core.gatys import GatysParams, stylize_gatys
from nst_core.images import load_image, resize
from nst_core.progress import Progress
from nst_core.vgg import VGGFeatures

CPU = torch.device("cpu")
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def test_dtype_is_native_bf16_or_float32() -> None:
    assert precision.loss_network_dtype(CPU) in (None, torch.bfloat16)
    assert precision.loss_network_dtype(torch.device("meta")) is None
    with precision.loss_network_precision(CPU, enabled=False):
        assert not torch.is_autocast_enabled("cpu")
    # disabled, it leaves an enclosing autocast alone (CUDA training's fp16 AMP)
    with torch.autocast("cpu", dtype=torch.bfloat16), \
            precision.loss_network_precision(CPU, enabled=False):
        assert torch.is_autocast_enabled("cpu")
    with precision.loss_network_precision(CPU):
        wanted = precision.loss_network_dtype(CPU) is not None
        assert torch.is_autocast_enabled("cpu") == wanted


@pytest.mark.skipif(
    precision.loss_network_dtype(CPU) is None,
    reason="this CPU has no native bf16 (AVX512-BF16/AMX): VGG always runs in float32 here",
)
def test_gatys_in_bf16_follows_float32(vgg16_weights, monkeypatch) -> None:
    content, _ = load_image(shared_file("content/kodim08.png"))
    style, _ = load_image(shared_file("styles/starry_night.jpg"))
    content = resize(content, (64, 64))
    vgg = VGGFeatures("vgg16", LAYERS, weights=vgg16_weights)
    params = GatysParams(iterations=40, scales=(1.0,))

    def run() -> tuple[torch.Tensor, list[Progress]]:
        events: list[Progress] = []
        out = stylize_gatys(content, [(style, 1.0)], vgg, params, progress=events.append)
        return out, events

    in_bf16, bf16_events = run()
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: False)
    in_fp32, fp32_events = run()
    first, last = fp32_events[0].losses["total"], fp32_events[-1].losses["total"]
    assert last < 0.7 * first
    assert bf16_events[-1].losses["total"] == pytest.approx(last, rel=0.03)
    # pixel by pixel the two optimisations drift apart (as two seeds would), but they
    # move the picture as far from the photo
    moved = [(out - content).abs().mean().item() for out in (in_bf16, in_fp32)]
    assert moved[0] == pytest.approx(moved[1], rel=0.15)
