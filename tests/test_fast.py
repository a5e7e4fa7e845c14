"""The fast method: sizes, strength, masks, colours, progress, cancellation, tiling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nst_core.color import luma
from nst_core.errors import Cancelled, ImageError, ParameterError
from nst_core.fast import FastRunner, runner_for, stylize_fast
from nst_core.progress import CancelToken, Progress
from nst_core.styles import preview_pattern
from nst_core.transformer_net import StyleModel, TransformerNet


def random_net(
    seed: int = 0, widths: tuple[int, int, int] = (32, 64, 128), blocks: int = 5
) -> TransformerNet:
    """An untrained network whose InstanceNorm affine parameters vary, for visible output."""
    torch.manual_seed(seed)
    net = TransformerNet(widths, blocks)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 2.0)
                module.bias.normal_(0.0, 0.5)
        net.deconv3.conv2d.weight.mul_(60.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    return random_net()


def plain_run(net: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """The reference: TransformerNet.forward as trained, on a size it accepts."""
    with torch.inference_mode():
        return (net(image * 255.0) / 255.0).clamp(0.0, 1.0)


def test_runner_matches_the_plain_network(net: TransformerNet) -> None:
    image = F.interpolate(preview_pattern(64), size=(48, 72), mode="bilinear")
    expected = plain_run(net, image)
    assert expected.std() > 0.05  # the test network draws something
    assert torch.allclose(FastRunner(net, "cpu")(image), expected, atol=1e-4)


@pytest.mark.parametrize(("widths", "blocks"), [((16, 32, 64), 3), ((8, 12, 20), 0)])
def test_runner_matches_the_plain_network_for_lite_architectures(
    widths: tuple[int, int, int], blocks: int
) -> None:
    lite = random_net(5, widths, blocks)
    image = F.interpolate(preview_pattern(64), size=(52, 68), mode="bilinear")
    expected = plain_run(lite, image)
    assert expected.std() > 0.05
    runner = FastRunner(lite, "cpu")
    assert runner.blocks == blocks
    assert torch.allclose(runner(image), expected, atol=1e-4)
    assert torch.allclose(
        stylize_fast(lite, image, device="cpu", tile_size=256), expected, atol=1e-4
    )


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (5, 3), (17, 31), (33, 20)])
def test_output_has_exactly_the_input_size(net: TransformerNet, size: tuple[int, int]) -> None:
    image = torch.rand(1, 3, *size)
    result = stylize_fast(net, image, device="cpu")
    assert result.shape == image.shape
    assert result.dtype == torch.float32 and result.min() >= 0.0 and result.max() <= 1.0


def test_odd_size_equals_a_run_on_the_padded_image_cropped(net: TransformerNet) -> None:
    image = torch.rand(1, 3, 30, 27)
    padded = F.pad(image, [0, 1, 0, 2], mode="reflect")
    expected = plain_run(net, padded)[..., :30, :27]
    assert torch.allclose(stylize_fast(net, image, device="cpu"), expected, atol=1e-4)


def test_accepts_a_style_model_and_caches_its_runner(net: TransformerNet) -> None:
    model = StyleModel(net, {"name": "test"})
    assert runner_for(model, "cpu") is runner_for(net, "cpu")
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(stylize_fast(model, image, device="cpu"), stylize_fast(net, image))


def test_strength_zero_returns_the_original(net: TransformerNet) -> None:
    image = torch.rand(1, 3, 12, 10)
    assert torch.equal(stylize_fast(net, image, strength=0.0), image)


def test_strength_and_mask_blend_with_the_original(net: TransformerNet) -> None:
    image = torch.rand(1, 3, 16, 24)
    styled = stylize_fast(net, image, device="cpu")
    half = stylize_fast(net, image, strength=0.5, device="cpu")
    assert torch.allclose(half, (image + styled) / 2, atol=1e-6)
    mask = torch.zeros(1, 1, 16, 24)
    mask[..., 12:] = 1.0
    mask[..., 8:12] = torch.linspace(0, 1, 6)[1:5]  # feathered edge
    masked = stylize_fast(net, image, mask=mask, device="cpu")
    assert torch.equal(masked[..., :8], image[..., :8])
    assert torch.allclose(masked[..., 12:], styled[..., 12:])
    assert torch.allclose(masked, image + (styled - image) * mask, atol=1e-6)


def test_preserve_colors_keeps_styled_luminance(net: TransformerNet) -> None:
    image = 0.3 + 0.4 * torch.rand(1, 3, 20, 20)
    styled = stylize_fast(net, image, device="cpu")
    kept = stylize_fast(net, image, preserve_colors="luminance", device="cpu")
    inside = (kept > 0.001).all(1) & (kept < 0.999).all(1)  # not clipped
    assert torch.allclose(luma(kept)[:, 0][inside], luma(styled)[:, 0][inside], atol=1e-4)
    assert not torch.allclose(kept, styled, atol=1e-3)


def test_progress_and_cancellation(net: TransformerNet) -> None:
    events: list[Progress] = []
    stylize_fast(net, torch.rand(1, 3, 8, 8), progress=events.append)
    assert [(e.step, e.total) for e in events] == [(0, 1), (1, 1)]  # the stage starts, ends

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        stylize_fast(net, torch.rand(1, 3, 8, 8), cancel=token)

    token, events = CancelToken(), []

    def cancel_after_first_tile(event: Progress) -> None:
        events.append(event)
        token.cancel()

    with pytest.raises(Cancelled):
        stylize_fast(
            net,
            torch.rand(1, 3, 300, 600),
            tile_size=256,
            progress=cancel_after_first_tile,
            cancel=token,
        )
    assert [(e.step, e.total, e.stage) for e in events] == [(1, 6, "stylize")]


def test_bad_arguments_are_refused(net: TransformerNet) -> None:
    with pytest.raises(ImageError):
        stylize_fast(net, torch.rand(3, 8, 8))
    with pytest.raises(ParameterError, match="strength"):
        stylize_fast(net, torch.rand(1, 3, 8, 8), strength=2.0)
    with pytest.raises(ParameterError, match="colour mode"):
        stylize_fast(net, torch.rand(1, 3, 8, 8), preserve_colors="sepia")
    with pytest.raises(ParameterError, match="tile_size"):
        stylize_fast(net, torch.rand(1, 3, 8, 8), tile_size=10)
    with pytest.raises(ParameterError, match="device"):
        stylize_fast(net, torch.rand(1, 3, 8, 8), device="tpu9")
