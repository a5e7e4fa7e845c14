"""Lite models: the grid notch, the grid term, distillation (resume, metadata, runner)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_fast import plain_run, random_net
from test_train import _picture

from nst_core.distill import DistillConfig, distill, remove_grid, teacher_data
from nst_core.fast import FastRunner
from nst_core.losses import grid_power, luminance
from nst_core.progress import Progress
from nst_core.styles import preview_pattern
from nst_core.transformer_net import load_style_model, save_style_model


def _lattice_mask(h: int, w: int) -> torch.Tensor:
    """FFT bins at multiples of 1/4 cycle per pixel in both directions, DC excluded."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:: h // 4, :: w // 4] = True
    mask[0, 0] = False
    return mask


def test_remove_grid_zeroes_exactly_the_grid_frequencies() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 40, dtype=torch.float64)
    notched = remove_grid(image)
    before, after = torch.fft.fft2(image.double()), torch.fft.fft2(notched.double())
    mask = _lattice_mask(32, 40)
    assert after[..., mask].abs().max() < 1e-9
    assert torch.allclose(after[..., ~mask], before[..., ~mask], atol=1e-9)
    with pytest.raises(ValueError):
        remove_grid(torch.rand(1, 3, 30, 40))


def test_grid_power_is_the_grid_frequencies_share_of_the_luminance() -> None:
    torch.manual_seed(1)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    pattern = torch.tensor([[0.1, -0.1, 0.05, 0.0]] * 4).repeat(16, 16)  # period 4
    gridded = (smooth + pattern).clamp(0, 1)
    assert grid_power(gridded) > 50 * grid_power(smooth)
    assert grid_power(remove_grid(gridded)) < 1e-10
    y = luminance(gridded)[0]
    power = torch.fft.fft2((y - y.mean()).double()).abs().square()
    share = power[_lattice_mask(64, 64)].sum() / power.sum()
    assert float(grid_power(gridded)) == pytest.approx(float(share), rel=1e-3)


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    meta = {
        "name": "stripes",
        "title": "Stripes",
        "artist": "Test Painter",
        "year": "2024",
        "licence": "test",
        "training": {"style_images": ["stripes.png"], "style_size": 64},
    }
    return save_style_model(tmp_path / "stripes.safetensors", random_net(3), meta)


@pytest.fixture
def config(teacher: Path, tmp_path: Path) -> DistillConfig:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _picture(photos / f"p{i}.png", seed=i)
    return DistillConfig(
        teacher=teacher,
        data_dir=photos,
        output=tmp_path / "lite.safetensors",
        work_dir=tmp_path / "work",
        widths=(4, 8, 8),
        blocks=1,
        crops=6,
        crop_size=32,
        steps=4,
        batch_size=2,
        lr=1e-2,
        checkpoint_every=1,
    )


class _Stop(Exception):
    pass


def test_distillation_resumes_exactly(config: DistillConfig, tmp_path: Path) -> None:
    straight = replace(
        config, work_dir=tmp_path / "straight", output=tmp_path / "straight.safetensors"
    )
    losses: list[float] = []
    distill(straight, progress=lambda p: losses.append(p.losses["pixel"]))
    assert len(losses) == 4

    def stop_after_two(p: Progress) -> None:
        if p.step == 2:
            raise _Stop

    with pytest.raises(_Stop):
        distill(config, progress=stop_after_two)
    assert not config.output.exists()
    resumed: list[int] = []
    distill(config, progress=lambda p: resumed.append(p.step))
    assert resumed == [3, 4]
    one = torch.load(tmp_path / "straight" / "straight.safetensors.ckpt", weights_only=True)
    two = torch.load(tmp_path / "work" / "lite.safetensors.ckpt", weights_only=True)
    for key, value in one["net"].items():
        assert torch.equal(value, two["net"][key]), key


def test_teacher_results_are_computed_once_without_the_grid(config: DistillConfig) -> None:
    inputs, targets = teacher_data(config)
    assert inputs.shape == targets.shape == (6, 3, 32, 32) and targets.dtype == torch.uint8
    assert (config.work_dir / f"teacher-{config.data_key()}.pt").exists()
    again = teacher_data(config)
    assert torch.equal(again[1], targets)
    teacher = FastRunner(load_style_model(config.teacher).net, "cpu")
    raw = teacher(inputs[:1].float() / 255)
    assert grid_power(targets[:1].float() / 255) < grid_power(raw)


def test_lite_model_names_its_teacher_and_runs_through_the_runner(
    config: DistillConfig,
) -> None:
    path = distill(config)
    model = load_style_model(path)
    assert model.net.widths == (4, 8, 8) and model.net.blocks == 1
    assert model.meta["name"] == "stripes" and model.meta["variant"] == "lite"
    teacher = json.loads(model.meta["teacher"])
    assert teacher["file"] == "stripes.safetensors" and len(teacher["sha256"]) == 64
    training = json.loads(model.meta["training"])
    assert training["method"] == "distillation" and training["style_images"] == ["stripes.png"]
    image = preview_pattern(40)
    assert torch.allclose(
        FastRunner(model.net, "cpu")(image), plain_run(model.net, image), atol=1e-4
    )
