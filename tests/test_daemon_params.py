"""Parameters that change pixels, checked on the pixels a real daemon returns.

Refinement (``init: fast``), ``preserve_colors`` and ``style_weights`` travel through the
protocol, the job queue and the daemon's resident models; each test compares the
daemon's picture with a direct engine run in this process or with another daemon job.
The VGG weights are random tensors of the right shapes (no reference data needed: the
comparisons hold for any network); the fast style is a bundled one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nst_client.protocol import Image
from nst_core.color import rgb_to_yiq
from nst_core.fast import stylize_fast
from nst_core.gatys import GatysParams, stylize_gatys
from nst_core.images import from_pixels, load_image, resize, to_pixels
from nst_core.paths import bundled_styles_dir
from nst_core.styles import preview_pattern
from nst_core.transformer_net import load_style_model
from nst_core.vgg import VGGFeatures, make_features

from daemon_helpers import DaemonProcess, noise_image

FAST_STYLE = "udnie"
EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "lighthouse.png"
GATYS = {"quality": "draft", "iterations": 4}  # two scales, a few L-BFGS steps


def picture(rgb: torch.Tensor) -> Image:
    return Image(rgb.shape[-1], rgb.shape[-2], 3, to_pixels(rgb, None, 3))


def tensor(image: Image) -> torch.Tensor:
    return from_pixels(image.data, image.width, image.height, image.channels)[0]


def levels(a: Image | torch.Tensor, b: Image | torch.Tensor) -> torch.Tensor:
    """``|a - b|`` per pixel and channel in 0-255 levels."""
    a, b = (tensor(x) if isinstance(x, Image) else x for x in (a, b))
    return 255 * (a - b).abs()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from safetensors.torch import save_file

    home = tmp_path_factory.mktemp("params")
    weights = home / "weights" / "vgg16_features.safetensors"
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    save_file(make_features("vgg16").state_dict(), str(weights))
    photo, _ = load_image(EXAMPLE_PHOTO)
    return {
        "home": home,
        "weights": weights,
        "photo": picture(resize(photo, (48, 64))),
        "style_a": picture(preview_pattern(64)),
        "style_b": noise_image(48, 64, 3, seed=4),
    }


@pytest.fixture(scope="module")
def daemon(world: dict[str, Any]) -> Iterator[DaemonProcess]:
    env = {"TORCH_HOME": str(world["home"] / "torch")}
    args = ["--vgg-weights", str(world["weights"])]
    with DaemonProcess(world["home"], args=args, env=env) as daemon:
        yield daemon


def run(daemon: DaemonProcess, image: Image, **request: Any) -> Image:
    with daemon.client(timeout=300) as client:
        return client.stylize(image, **request).image


def gatys(daemon: DaemonProcess, world: dict[str, Any], styles: list[str], **params: Any) -> Image:
    return run(
        daemon,
        world["photo"],
        method="gatys",
        style_image=[world[s] for s in styles],
        params={**GATYS, **params},
    )


def test_refinement_starts_from_the_fast_result(
    daemon: DaemonProcess, world: dict[str, Any]
) -> None:
    """``init: fast`` with ``init_style``: unlike a photo-initialised run, and equal to
    the engine's Gatys run started from the fast style's picture (computed here, one
    thread as the daemon)."""
    refined = gatys(daemon, world, ["style_a"], init="fast", init_style=FAST_STYLE)
    from_photo = gatys(daemon, world, ["style_a"])
    fast_only = run(daemon, world["photo"], style=FAST_STYLE)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        content = tensor(world["photo"])
        model = load_style_model(bundled_styles_dir() / f"{FAST_STYLE}.safetensors")
        start = stylize_fast(model, content, device="cpu")
        vgg = VGGFeatures("vgg16", weights=world["weights"])
        params = GatysParams.preset(GATYS["quality"], iterations=GATYS["iterations"])
        direct = stylize_gatys(content, [(tensor(world["style_a"]), 1.0)], vgg, params, init=start)
    finally:
        torch.set_num_threads(threads)

    apart, moved = levels(refined, from_photo).mean(), levels(refined, fast_only).mean()
    off = levels(refined, direct)
    print(
        f"\nrefinement: {apart:.1f} levels from the photo-initialised run, {moved:.1f} "
        f"from the fast picture; off the direct engine run by at most {off.max():.0f}"
    )
    assert apart > 10  # it started somewhere else
    assert moved > 0.5  # and Gatys worked on it
    assert off.max() <= 1  # exactly the engine's refinement of the fast picture


@pytest.mark.parametrize("method", ["fast", "gatys"])
def test_luminance_mode_keeps_the_photos_chroma(
    daemon: DaemonProcess, world: dict[str, Any], method: str
) -> None:
    """YIQ chroma (I, Q) of the result is the photo's, its luminance Y the styled one's
    (within the rounding of the styled picture to 8 bits)."""
    request: dict[str, Any] = (
        {"style": FAST_STYLE}
        if method == "fast"
        else {"method": "gatys", "style_image": world["style_b"], "params": dict(GATYS)}
    )
    plain = run(daemon, world["photo"], **request)
    request["params"] = {**request.get("params", {}), "preserve_colors": "luminance"}
    kept = run(daemon, world["photo"], **request)

    photo_yiq, plain_yiq, kept_yiq = (rgb_to_yiq(tensor(x)) for x in (world["photo"], plain, kept))
    kept_rgb = tensor(kept)
    inside = ((kept_rgb > 0.5 / 255) & (kept_rgb < 254.5 / 255)).all(1)  # not clipped
    assert inside.float().mean() > 0.5
    chroma_off = 255 * (kept_yiq[:, 1:] - photo_yiq[:, 1:]).abs().amax(1)[inside]
    luma_off = 255 * (kept_yiq[:, 0] - plain_yiq[:, 0]).abs()[inside]
    changed = 255 * (plain_yiq[:, 1:] - photo_yiq[:, 1:]).abs().mean()
    print(
        f"\nluminance mode ({method}): chroma off the photo's by at most "
        f"{chroma_off.max():.2f} levels (the plain result's by {changed:.1f} on average), "
        f"luma off the styled one's by at most {luma_off.max():.2f}"
    )
    assert changed > 3  # without the mode the colours do change
    # exactly: the new luminance adds one amount to R, G and B, so it survives rounding
    assert chroma_off.max() < 0.01
    assert luma_off.max() < 1.5


def test_style_weights_one_zero_equal_the_single_style(
    daemon: DaemonProcess, world: dict[str, Any]
) -> None:
    """Two style images weighted [1, 0] paint exactly as the first alone, [0, 1] as the
    second alone; the two single styles differ (so the comparison can tell)."""
    a_only = gatys(daemon, world, ["style_a"])
    b_only = gatys(daemon, world, ["style_b"])
    first = gatys(daemon, world, ["style_a", "style_b"], style_weights=[1.0, 0.0])
    second = gatys(daemon, world, ["style_a", "style_b"], style_weights=[0.0, 1.0])
    between = levels(a_only, b_only).mean()
    print(
        f"\nstyle weights: the two single styles are {between:.1f} levels apart; "
        f"[1, 0] off the first by {levels(first, a_only).max():.0f}, [0, 1] off the "
        f"second by {levels(second, b_only).max():.0f}"
    )
    assert between > 3
    assert levels(first, a_only).max() <= 1
    assert levels(second, b_only).max() <= 1
