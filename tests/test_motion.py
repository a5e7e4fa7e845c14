"""Temporal consistency of fast stylisation (``nst_core.motion``) on generated clips.

Clips are made in the test from the procedural preview picture (no reference data), tiny
and short; the style is a bundled network. Flicker is asserted as a ratio to plain
per-frame stylisation of the same clip, never as a time.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nst_core import motion
from nst_core.errors import ImageError, ParameterError
from nst_core.fast import FastRunner, stylize_fast
from nst_core.images import resize
from nst_core.motion import (
    Consistency,
    RunningStats,
    VideoStylizer,
    pooled_stats,
    stylize_frames,
)
from nst_core.motion_clips import flicker, make_clip
from nst_core.paths import bundled_styles_dir
from nst_core.styles import preview_pattern
from nst_core.transformer_net import load_style_model

SIZE = (64, 96)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_style_model(bundled_styles_dir() / "starry-night.safetensors")


def textured_picture(height: int = 192, width: int = 256, seed: int = 0) -> torch.Tensor:
    """The preview picture with coloured detail at several scales everywhere (a flat
    region would show motion nowhere)."""
    g = torch.Generator().manual_seed(seed)
    detail = sum(
        F.interpolate(
            torch.rand(1, 3, height // cell, width // cell, generator=g),
            size=(height, width),
            mode="bicubic",
            align_corners=False,
        )
        / (i + 1)
        for i, cell in enumerate((32, 8, 3))
    )
    base = resize(preview_pattern(max(height, width)), (height, width))
    return (0.5 * base + 0.35 * detail / 1.83).clamp(0.0, 1.0)


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    return textured_picture()


def _ratio(model, clip, consistency) -> tuple[float, float, list[torch.Tensor]]:
    plain = list(stylize_frames(clip.frames, model, consistency="off"))
    ours = list(stylize_frames(clip.frames, model, consistency=consistency))
    return flicker(clip, plain).overall, flicker(clip, ours).overall, ours


@pytest.mark.parametrize(("kind", "gain"), [("static", 2.0), ("pan", 2.0), ("object", 1.5)])
def test_flicker_is_lower_than_per_frame(model, picture, kind, gain):
    # tiny clips: the flow of a 21x24 moving patch is rough, hence its smaller gain
    clip = make_clip(picture, kind, SIZE, 6, noise=3 / 255)
    plain, ours, frames = _ratio(model, clip, "full")
    assert plain / ours >= gain, (kind, plain, ours)
    # not bought by freezing or washing out the picture: the strokes stay as strong
    last_plain = stylize_fast(model, clip.frames[-1])
    detail = [
        (f - resize(resize(f, (16, 24)), SIZE)).abs().mean() for f in (frames[-1], last_plain)
    ]
    assert detail[0] > 0.8 * detail[1]


@pytest.mark.skipif(not motion.opencv_available(), reason="OpenCV (the video extra) absent")
def test_pan_without_flow_is_only_stabler_where_nothing_moves(model, picture):
    clip = make_clip(picture, "pan", SIZE, 5)
    with_flow = list(stylize_frames(clip.frames, model, consistency=Consistency()))
    no_flow = list(stylize_frames(clip.frames, model, consistency=Consistency(flow="none")))
    assert flicker(clip, with_flow).moving < flicker(clip, no_flow).moving


def test_off_is_plain_per_frame_stylisation(model, picture):
    clip = make_clip(picture, "zoom", SIZE, 3)
    for frame, styled in zip(
        clip.frames, stylize_frames(clip.frames, model, consistency="off"), strict=True
    ):
        assert torch.equal(styled, stylize_fast(model, frame))


def test_stats_hook_returning_none_changes_nothing(model, picture):
    runner = FastRunner(model)
    image = resize(picture, (40, 52))
    plain, stats = runner.run(image)
    seen = []
    hooked, used = runner.run(image, lambda i, m, s: seen.append(i))
    assert torch.equal(plain, hooked)
    assert seen == list(range(len(stats))) == list(range(15))
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(stats, used, strict=True)
    )


def test_running_stats_pool_mean_and_variance():
    torch.manual_seed(0)
    a, b = torch.randn(1, 4, 10, 10), 3 + 2 * torch.randn(1, 4, 10, 10)

    def own(x):
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        return mean, (var + motion.EPS).rsqrt()

    hook = RunningStats(memory=10)
    hook.next_frame()
    assert hook(0, *own(a)) is None  # the first frame keeps its own statistics
    hook.next_frame()
    mean, invstd = hook(0, *own(b))
    both = torch.cat([a, b], dim=3)
    want_mean, want_invstd = own(both)
    assert torch.allclose(mean, want_mean, atol=1e-5)
    assert torch.allclose(invstd, want_invstd, rtol=1e-4)
    pooled = pooled_stats([[own(a)], [own(b)]])
    assert torch.allclose(pooled[0][0], want_mean, atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (17, 5), (33, 47)])
def test_odd_and_tiny_frames(model, size):
    g = torch.Generator().manual_seed(1)
    frames = [torch.rand(1, 3, *size, generator=g) for _ in range(3)]
    out = list(stylize_frames(frames, model))
    assert [tuple(f.shape) for f in out] == [(1, 3, *size)] * 3
    assert all(torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1 for f in out)


def test_one_frame_equals_a_picture(model, picture):
    frame = resize(picture, SIZE)
    (only,) = stylize_frames([frame], model)
    assert torch.allclose(only, stylize_fast(model, frame), atol=1e-6)


def test_clip_statistics_and_options(model, picture):
    clip = make_clip(picture, "static", SIZE, 4)
    cons = Consistency(stats="clip", clip_samples=3)
    out = list(
        stylize_frames(
            clip.frames,
            model,
            consistency=cons,
            strength=0.5,
            preserve_colors="luminance",
            max_size=48,
        )
    )
    assert len(out) == 4 and out[0].shape == clip.frames[0].shape
    with pytest.raises(ParameterError):
        list(stylize_frames(clip.frames, model, strength=2.0))
    with pytest.raises(ParameterError):
        Consistency(carry=1.0)
    with pytest.raises(ParameterError):
        motion.consistency_of("smooth")
    with pytest.raises(ImageError):
        list(stylize_frames([torch.rand(1, 4, 8, 8)], model))


def test_scene_cut_and_size_change_start_afresh(model, picture):
    first = resize(picture, SIZE)
    other = 1.0 - first  # a cut: nothing of the previous frame may be carried
    stylizer = VideoStylizer(model)
    stylizer.step(first)
    after_cut = stylizer.step(other)
    assert torch.allclose(after_cut, stylize_fast(model, other), atol=1e-5)
    smaller = resize(first, (32, 48))
    assert torch.allclose(stylizer.step(smaller), stylize_fast(model, smaller), atol=1e-5)


def test_flow_dis_without_opencv_is_a_clear_error(model, monkeypatch):
    monkeypatch.setattr(motion, "opencv_available", lambda: False)
    with pytest.raises(ParameterError, match="OpenCV"):
        VideoStylizer(model, Consistency(flow="dis"))
    stylizer = VideoStylizer(model, Consistency(flow="auto"))  # falls back to no flow
    assert stylizer.flow_method == "none"


def test_cost_is_measured(model, picture):
    clip = make_clip(picture, "pan", SIZE, 3)
    stylizer = VideoStylizer(model)
    list(stylize_frames(clip.frames, model, stylizer=stylizer))
    cost = stylizer.cost.per_frame()
    assert stylizer.cost.frames == 3 and cost["network_s"] > 0
    assert "carry" in motion.describe("full") and motion.describe("off") == "per-frame"


def test_camera_zoom_and_its_refinement_recover_a_known_zoom(picture):
    from nst_core.motion_flow import camera_zoom, refine_zoom

    clip = make_clip(picture, "zoom", (96, 128), 3)
    assert camera_zoom(clip.flows[0]) == pytest.approx((0.985, 0.0, 0.0), abs=1e-4)
    # from an estimate as biased as DIS flow gives, the picture match finds the zoom
    found = refine_zoom(clip.frames[1], clip.frames[0], 0.9885, (0.0, 0.0))
    assert found == pytest.approx(0.985, abs=1e-3)
    pan = make_clip(picture, "pan", (96, 128), 3)
    zoom, dx, dy = camera_zoom(pan.flows[0])
    assert zoom == 1.0 and (dx, dy) == (2.0, 0.0)


def test_reference_flow_vanishes_while_a_zoom_is_followed(picture):
    from nst_core.motion import reference_flow

    clip = make_clip(picture, "zoom", (96, 128), 3)
    # frame 2's flow back to frame 1, both held in frame 0's geometry
    rest = reference_flow(clip.flows[1], (0.985, (0.0, 0.0)), (0.985**2, (0.0, 0.0)))
    assert rest[..., 8:-8, 8:-8].abs().max() < 1e-3
    plain = reference_flow(clip.flows[1], None, None)  # both in their own: the flow itself
    assert torch.allclose(plain[..., 2:-2, 2:-2], clip.flows[1][..., 2:-2, 2:-2], atol=1e-3)


@pytest.mark.skipif(not motion.opencv_available(), reason="OpenCV (the video extra) absent")
def test_a_zoom_is_followed_and_keeps_the_strokes(model, picture, vgg16_weights):
    from nst_core.losses import JOHNSON_STYLE_WEIGHTS, grams, style_loss
    from nst_core.vgg import VGGFeatures

    clip = make_clip(picture, "zoom", (96, 128), 8, noise=0.0)
    stylizer = VideoStylizer(model, Consistency())
    followed = [stylizer.step(frame) for frame in clip.frames]
    assert stylizer._zoom == pytest.approx(0.985**7, abs=0.01)  # the camera's zoom, tracked
    unfollowed = list(stylize_frames(clip.frames, model, consistency=Consistency(align=False)))
    plain = list(stylize_frames(clip.frames, model, consistency="off"))
    assert flicker(clip, followed).overall < 0.5 * flicker(clip, plain).overall
    # the carry no longer averages strokes that disagree: the last frame's style (Gram
    # matrices) stays nearer the network's own picture of it
    layers = list(JOHNSON_STYLE_WEIGHTS)
    vgg = VGGFeatures("vgg16", layers, vgg16_weights)
    with torch.no_grad():
        target = grams(vgg(plain[-1]), layers)
        distance = [
            float(style_loss(grams(vgg(f[-1]), layers), target, JOHNSON_STYLE_WEIGHTS))
            for f in (followed, unfollowed)
        ]
    assert distance[0] < 0.8 * distance[1], distance


def test_pan_alignment_shifts_the_frame_at_its_own_size(model, picture):
    """The pan's alignment shifts the content onto the first frame's stride grid without
    changing the size the network sees (a size off a multiple of 4 costs it up to 40 %):
    away from the far edges, the result is the network's picture of the shifted frame."""
    clip = make_clip(picture, "pan", SIZE, 2)  # the second frame: 2 px left, so shifted 2
    stylizer = VideoStylizer(model, Consistency(stats="frame", carry=0.0, flow="dis"))
    seen: list[tuple[int, ...]] = []
    run = stylizer.runner.run

    def spy(content, stats=None):
        seen.append(tuple(content.shape))
        return run(content, stats)

    stylizer.runner.run = spy  # type: ignore[method-assign]
    stylizer.step(clip.frames[0])
    second = stylizer.step(clip.frames[1])
    assert seen == [(1, 3, *SIZE)] * 2
    shifted = F.pad(clip.frames[1], [2, 0, 0, 0], mode="reflect")[..., : SIZE[1]]
    want = run(shifted)[0][..., 2:]
    assert torch.allclose(second[..., :, : SIZE[1] - 2], want, atol=1e-5)
    assert torch.allclose(second[..., -2:], want[..., -3:-1].flip(-1), atol=1e-5)
