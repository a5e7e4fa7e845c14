"""Gatys optimisation: convergence with real weights, scale invariance, cancellation,
determinism, masks, style blending, target cache, progress and parameter checks."""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import shared_file

from nst_core.errors import Cancelled, ImageError, ParameterError
from nst_core.gatys import (
    GatysParams,
    scale_sizes,
    schedule,
    stage_name,
    style_cache_key,
    style_targets,
    stylize_gatys,
)
from nst_core.images import load_image, resize
from nst_core.progress import CancelToken, Progress
from nst_core.vgg import VGGFeatures, make_features

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@functools.cache
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return make_features("vgg16").state_dict()


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    """VGG16 with fixed random weights: exercises the machinery without reference data."""
    return VGGFeatures("vgg16", LAYERS, weights=random_state())


def images(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    content = torch.stack([x, y, (x + y) / 2]).unsqueeze(0)
    style = torch.rand(1, 3, size + 8, size + 8, generator=gen)
    return content, style


def quick(**kw) -> GatysParams:
    return GatysParams(**{"iterations": 6, "scales": (1.0,), **kw})


def run_with_losses(content, styles, vgg, params, **kw) -> tuple[torch.Tensor, list[Progress]]:
    events: list[Progress] = []
    out = stylize_gatys(content, styles, vgg, params, progress=events.append, **kw)
    return out, events


def test_reduces_style_and_content_loss_with_reference_weights(vgg16_weights) -> None:
    content, _ = load_image(shared_file("content/kodim08.png"))
    style, _ = load_image(shared_file("styles/starry_night.jpg"))
    content = resize(content, (64, 64))
    real = VGGFeatures("vgg16", LAYERS, weights=vgg16_weights)
    params = GatysParams(iterations=30, scales=(1.0,), init="noise", seed=1)
    out, events = run_with_losses(content, [(style, 1.0)], real, params)
    first, last = events[0].losses, events[-1].losses
    assert last["style"] < 0.25 * first["style"]  # ~0.2x: content weight holds it there
    assert last["content"] < 0.5 * first["content"]
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1


def test_same_result_when_activations_are_rescaled(vgg) -> None:
    """Weight sets differ ~100x in activation scale; the defaults must not care."""
    content, style = images()
    # first conv's weights and every bias x16: every activation is exactly 16x larger (a
    # power of two, so also exactly in bf16, which VGG may run in: nst_core.precision)
    scaled = {
        k: v * 16 if k == "0.weight" or k.endswith("bias") else v for k, v in random_state().items()
    }
    big = VGGFeatures("vgg16", LAYERS, weights=scaled)
    params = quick(init="noise")
    a, ea = run_with_losses(content, [(style, 1.0)], vgg, params)
    b, eb = run_with_losses(content, [(style, 1.0)], big, params)
    assert eb[0].losses["style"] == pytest.approx(ea[0].losses["style"], rel=1e-3)
    assert eb[-1].losses["total"] == pytest.approx(ea[-1].losses["total"], rel=1e-2)
    # identical up to float rounding, which L-BFGS amplifies a little (more in bf16)
    assert (a - b).abs().mean() < 0.05 * (a - content).abs().mean()


def test_deterministic_with_seed(vgg) -> None:
    content, style = images()
    params = quick(init="noise", seed=7)
    a = stylize_gatys(content, [(style, 1.0)], vgg, params)
    b = stylize_gatys(content, [(style, 1.0)], vgg, params)
    c = stylize_gatys(content, [(style, 1.0)], vgg, quick(init="noise", seed=8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_cancellation_stops_at_the_next_step(vgg) -> None:
    content, style = images()
    token = CancelToken()
    seen: list[int] = []

    def progress(p: Progress) -> None:
        seen.append(p.step)
        if p.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        stylize_gatys(
            content, [(style, 1.0)], vgg, quick(iterations=50), progress=progress, cancel=token
        )
    assert seen == [1, 2]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        stylize_gatys(content, [(style, 1.0)], vgg, quick(), cancel=token)


def test_mask_keeps_outside_pixels(vgg) -> None:
    content, style = images()
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    out = stylize_gatys(content, [(style, 1.0)], vgg, quick(), mask=mask)
    outside = mask.expand_as(content) == 0
    assert torch.allclose(out[outside], content[outside], atol=1e-6)
    assert (out[~outside] - content[~outside]).abs().mean() > 1e-3
    with pytest.raises(ImageError, match="mask"):
        stylize_gatys(content, [(style, 1.0)], vgg, quick(), mask=torch.zeros(1, 1, 8, 8))


def test_multi_scale_progress_and_previews(vgg) -> None:
    content, style = images(128)
    params = GatysParams(
        iterations=2, scales=(0.5, 1.0), coarse_fraction=1.5, preview_every=4, preview_size=16
    )
    targets: dict = {}
    out, events = run_with_losses(content, [(style, 1.0)], vgg, params, targets=targets)
    # one step count for the whole job, stages in plain words
    assert [e.step for e in events] == list(range(1, 6)) and {e.total for e in events} == {5}
    assert [e.stage for e in events] == ["rough layout"] * 3 + ["details"] * 2
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in events) and events[-1].eta_s == 0
    previews = [e for e in events if e.preview is not None]
    assert [e.step for e in previews] == [4, 5]  # every 4 steps, and the last
    assert max(previews[0].preview.shape[-2:]) <= 16
    assert set(events[-1].losses) == {"content", "style", "total"}
    assert sorted(targets) == [64, 128] and out.shape == content.shape


def test_cached_targets_are_used(vgg) -> None:
    content, style = images()
    params = quick()
    cache = {32: style_targets(vgg, [(style, 1.0)], params, 32)}
    a = stylize_gatys(content, [(style, 1.0)], vgg, params)
    # a different style image: the cached targets of the first one must win
    b = stylize_gatys(content, [(style.flip(-1) * 0.5, 1.0)], vgg, params, targets=cache)
    assert torch.allclose(a, b, atol=1e-6)
    key = style_cache_key(vgg, [(style, 1.0)], params)
    assert key == style_cache_key(vgg, [(style.clone(), 1.0)], params)
    assert key != style_cache_key(vgg, [(style, 1.0)], quick(style_scale=0.5))


def test_blended_styles(vgg) -> None:
    content, style = images()
    other = 1 - style
    single = stylize_gatys(content, [(style, 1.0)], vgg, quick())
    with_zero = stylize_gatys(content, [(style, 2.0), (other, 0.0)], vgg, quick())
    mixed = stylize_gatys(content, [(style, 1.0), (other, 1.0)], vgg, quick())
    assert torch.allclose(single, with_zero, atol=1e-5)
    assert not torch.allclose(single, mixed, atol=1e-3)


def test_init_image_refinement_and_adam(vgg) -> None:
    content, style = images()
    start = torch.full((1, 3, 16, 16), 0.5)  # another size: resized to the content
    _, events = run_with_losses(content, [(style, 1.0)], vgg, quick(iterations=1), init=start)
    _, from_content = run_with_losses(content, [(style, 1.0)], vgg, quick(iterations=1))
    assert events[0].losses["content"] > 0 == from_content[0].losses["content"]
    out, adam = run_with_losses(content, [(style, 1.0)], vgg, quick(optimizer="adam", tv_weight=1))
    assert adam[-1].losses["total"] < adam[0].losses["total"] and "tv" in adam[-1].losses
    assert out.min() >= 0 and out.max() <= 1


def test_preserve_colors_runs(vgg) -> None:
    content, style = images()
    plain = stylize_gatys(content, [(style, 1.0)], vgg, quick())
    kept = stylize_gatys(content, [(style, 1.0)], vgg, quick(preserve_colors="luminance"))
    assert not torch.allclose(plain, kept)


def test_presets_and_bad_parameters(vgg) -> None:
    assert GatysParams.preset("draft").iterations < GatysParams.preset("high").iterations
    assert GatysParams.preset("high", seed=3).seed == 3
    content, style = images()
    for bad in (
        {"iterations": 0},
        {"style_strength": 0},
        {"optimizer": "sgd"},
        {"init": "fast"},
        {"scales": (2.0,)},
        {"preserve_colors": "sepia"},
        {"style_scale": 50},
    ):
        with pytest.raises(ParameterError):
            stylize_gatys(content, [(style, 1.0)], vgg, quick(**bad))
    with pytest.raises(ParameterError, match="quality"):
        GatysParams.preset("ultra")
    with pytest.raises(ParameterError):
        stylize_gatys(content, [], vgg, quick())
    with pytest.raises(ImageError):
        stylize_gatys(content[:, :1], [(style, 1.0)], vgg, quick())
    shallow = VGGFeatures("vgg16", ["relu2_1"], weights=random_state())
    with pytest.raises(ParameterError, match="relu"):
        stylize_gatys(content, [(style, 1.0)], shallow, quick())


def test_scale_sizes() -> None:
    assert scale_sizes(512, 256, (0.25, 0.5, 1.0)) == [(128, 64), (256, 128), (512, 256)]
    assert scale_sizes(100, 100, (0.25, 0.5, 1.0)) == [(100, 100)]  # 25, 50 px too small
    assert scale_sizes(200, 300, (1.0, 0.5)) == [(100, 150), (200, 300)]


def test_schedule_fractions_per_scale_and_stage_names() -> None:
    params = GatysParams(iterations=10, scales=(0.25, 0.5, 1.0), coarse_fraction=(6.0, 2.0))
    assert schedule(512, 512, params) == [((128, 128), 60), ((256, 256), 20), ((512, 512), 10)]
    # a skipped scale (under 64 px) takes its steps with it; the others keep theirs
    assert schedule(100, 200, params) == [((100, 200), 10)]
    assert schedule(200, 200, params) == [((100, 100), 20), ((200, 200), 10)]
    assert schedule(512, 512, GatysParams(iterations=5, scales=(0.5, 1.0))) == [
        ((256, 256), 5),
        ((512, 512), 5),
    ]
    with pytest.raises(ParameterError, match="coarse_fraction"):
        schedule(512, 512, GatysParams(scales=(0.5, 1.0), coarse_fraction=(1.0, 2.0)))
    names = [stage_name(i, 3) for i in range(3)]
    assert names == ["rough layout", "refining", "details"] and stage_name(0, 1) == "painting"


def test_style_coloured_start_and_fine_skip(vgg) -> None:
    content, style = images(128)
    params = GatysParams(
        iterations=2, scales=(0.5, 1.0), start_colors="style", fine_skip=("relu5_1",)
    )
    out, events = run_with_losses(content, [(style, 1.0)], vgg, params)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert events[-1].stage == "details"
    with pytest.raises(ParameterError, match="start_colors"):
        stylize_gatys(content, [(style, 1.0)], vgg, quick(start_colors="sepia"))
