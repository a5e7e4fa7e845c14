"""bf16 loss network: used only where native, and the optimisation follows float32's."""

from __future__ import annotations

import math

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
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        precision.loss_network_precision(CPU, enabled=False),
    ):
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


def test_gatys_bf16_path_runs_and_follows_float32_on_any_cpu(monkeypatch) -> None:
    """The bf16 path forced on (emulated, slowly, where the CPU has no native bf16, so CI
    runs it everywhere): tiny picture, random VGG weights. The VGG convolutions must run
    in bf16, the losses stay float32, and the run follows the float32 one."""
    torch.manual_seed(0)
    vgg = VGGFeatures("vgg16", LAYERS, weights=random_vgg_weights())
    content = torch.rand(1, 3, 32, 32)
    style = torch.rand(1, 3, 32, 32) ** 2
    params = GatysParams(iterations=12, scales=(1.0,))
    conv_dtypes: set[torch.dtype] = set()
    hooks = [
        m.register_forward_hook(lambda m, i, out: conv_dtypes.add(out.dtype))
        for m in vgg.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]

    def run(native: bool) -> tuple[torch.Tensor, list[Progress]]:
        monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: native)
        conv_dtypes.clear()
        events: list[Progress] = []
        out = stylize_gatys(content, [(style, 1.0)], vgg, params, progress=events.append)
        return out, events

    in_bf16, bf16_events = run(True)
    assert conv_dtypes == {torch.bfloat16}
    in_fp32, fp32_events = run(False)
    assert conv_dtypes == {torch.float32}
    for h in hooks:
        h.remove()
    for event in (*bf16_events, *fp32_events):
        assert all(isinstance(v, float) and math.isfinite(v) for v in event.losses.values())
    # the same picture's losses agree to bf16 rounding; then L-BFGS on random weights
    # takes each run its own way (as two seeds would), both far down
    for name, value in fp32_events[0].losses.items():
        assert bf16_events[0].losses[name] == pytest.approx(value, rel=0.02), name
    first = fp32_events[0].losses["total"]
    assert bf16_events[-1].losses["total"] < 0.1 * first
    assert fp32_events[-1].losses["total"] < 0.1 * first
    assert torch.isfinite(in_bf16).all() and in_bf16.dtype == torch.float32
    assert not torch.equal(in_bf16, in_fp32)  # two different computations ran


def random_vgg_weights() -> dict[str, torch.Tensor]:
    """VGG16 ``features`` weights of the right shapes, random values (no reference data)."""
    from nst_core.vgg import make_features

    return make_features("vgg16").state_dict()
