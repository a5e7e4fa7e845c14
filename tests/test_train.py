"""Johnson training: loss goes down, checkpoints resume exactly, cancel, model files, scale."""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

from nst_core.errors import Cancelled, ImageError, ParameterError
from nst_core.progress import CancelToken, Progress
from nst_core.train import TrainConfig, batch_for_step, prefetched_batches, train
from nst_core.transformer_net import load_style_model


def _picture(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    """A small synthetic 'photo': a gradient with a few coloured shapes."""
    gen = torch.Generator().manual_seed(seed)
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = (int(v) for v in torch.randint(0, min(size) - 20, (2,), generator=gen))
        colour = tuple(int(v) for v in torch.randint(0, 256, (3,), generator=gen))
        draw.ellipse((x, y, x + 24, y + 18), fill=colour)
    img.save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train-data")
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        _picture(photos / f"p{i}.png", seed=i)
    style = root / "stripes.png"
    stripes = Image.new("RGB", (64, 64), (240, 200, 20))
    draw = ImageDraw.Draw(stripes)
    for x in range(0, 64, 8):
        draw.line((x, 0, x + 30, 64), fill=(20, 40, 200), width=3)
    stripes.save(style)
    return photos, style


@pytest.fixture
def config(data: tuple[Path, Path], vgg16_weights: Path, tmp_path: Path) -> TrainConfig:
    photos, style = data
    return TrainConfig(
        style_images=[style],
        data_dir=photos,
        name="stripes",
        title="Stripes",
        artist="Test Painter",
        year="2024",
        output=tmp_path / "stripes.safetensors",
        steps=4,
        batch_size=2,
        image_size=48,
        style_size=64,
        lr=5e-3,
        vgg_weights=vgg16_weights,
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_every=1,
    )


def test_prefetched_batches_are_each_steps_own_and_stop_their_threads(
    data: tuple[Path, Path],
) -> None:
    photos, style = data
    files = sorted(photos.iterdir())
    cfg = TrainConfig(
        style_images=[style], data_dir=photos, name="x", steps=9, batch_size=3, image_size=40
    )
    with closing(prefetched_batches(files, cfg, 2)) as batches:
        got = list(batches)
    assert len(got) == 7
    for step, batch in zip(range(2, 9), got, strict=True):
        assert torch.equal(batch, batch_for_step(files, cfg, step))

    with closing(prefetched_batches(files, replace(cfg, steps=10_000), 0)) as batches:
        next(batches)  # a run cancelled early leaves no loader threads behind
    deadline = time.monotonic() + 10
    while any(t.name.startswith("nst-train-data") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "data loader threads still running"
        time.sleep(0.05)


def _run(config: TrainConfig, cancel: CancelToken | None = None) -> tuple[Path, list[Progress]]:
    seen: list[Progress] = []
    path = train(config, progress=seen.append, cancel=cancel)
    return path, seen


def test_training_reduces_the_loss(config: TrainConfig) -> None:
    _, seen = _run(replace(config, steps=10, checkpoint_dir=None))
    totals = [p.losses["total"] for p in seen]
    assert [p.step for p in seen] == list(range(1, 11))
    assert set(seen[0].losses) == {"content", "style", "tv", "total"}
    assert sum(totals[-3:]) < 0.95 * sum(totals[:3]), totals


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(
    config: TrainConfig, tmp_path: Path
) -> None:
    _run(replace(config, steps=2))
    _, resumed = _run(replace(config, steps=4))
    assert [p.step for p in resumed] == [3, 4]

    straight = replace(
        config, checkpoint_dir=tmp_path / "other", output=tmp_path / "straight.safetensors"
    )
    _, seen = _run(straight)
    assert seen[-1].losses["total"] == pytest.approx(resumed[-1].losses["total"], rel=1e-4)
    a = load_file(str(config.output))
    b = load_file(str(straight.output))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_stops_with_a_checkpoint_and_no_model(config: TrainConfig) -> None:
    token = CancelToken()

    def on_progress(p: Progress) -> None:
        if p.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        train(replace(config, checkpoint_every=100), progress=on_progress, cancel=token)
    assert not config.output.exists()
    checkpoint = torch.load(config.checkpoint_dir / "stripes.ckpt", weights_only=True)
    assert checkpoint["step"] == 2


def test_output_loads_and_carries_the_metadata(config: TrainConfig, tmp_path: Path) -> None:
    previews: list[torch.Tensor] = []
    path = train(
        replace(config, steps=2, preview_every=1, preview_dir=tmp_path / "previews"),
        progress=lambda p: previews.append(p.preview),
    )
    assert len(previews) == 2 and previews[0].shape == (1, 3, 48, 48)
    assert sorted(f.name for f in (tmp_path / "previews").iterdir()) == [
        "stripes-000001.png",
        "stripes-000002.png",
    ]
    model = load_style_model(path)
    meta = model.meta
    assert (meta["name"], meta["title"], meta["artist"], meta["year"]) == (
        "stripes",
        "Stripes",
        "Test Painter",
        "2024",
    )
    assert "public domain" in meta["licence"]
    training = json.loads(meta["training"])
    assert training["steps"] == 2 and training["batch_size"] == 2
    assert training["image_size"] == 48 and training["content_layer"] == "relu2_2"
    assert list(training["style_layers"]) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert json.loads(meta["vgg"])["arch"] == "vgg16"
    assert next(iter(load_file(str(path)).values())).dtype == torch.float16
    out = model.net(torch.rand(1, 3, 32, 32) * 255)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_fine_tuning_starts_from_the_given_model(config: TrainConfig, tmp_path: Path) -> None:
    base = train(replace(config, steps=3, checkpoint_dir=None))
    tuned = replace(
        config,
        steps=1,
        name="tuned",
        output=tmp_path / "tuned.safetensors",
        init_model=base,
        checkpoint_dir=None,
    )
    fresh = replace(tuned, init_model=None, output=tmp_path / "fresh.safetensors")
    _, from_base = _run(tuned)
    _, from_scratch = _run(fresh)
    # Three steps of training already lowered the loss of the very first batch.
    assert from_base[0].losses["total"] < from_scratch[0].losses["total"]
    meta = load_style_model(tmp_path / "tuned.safetensors").meta
    training = json.loads(meta["training"])
    assert training["fine_tuned_from"] == "stripes"
    assert training["earlier_training"]["steps"] == 3  # the base run, kept as history


def test_grid_term_is_trained_and_recorded(config: TrainConfig) -> None:
    _, seen = _run(replace(config, steps=2, grid_weight=500.0, checkpoint_dir=None))
    assert set(seen[0].losses) == {"content", "style", "tv", "grid", "total"}
    terms = seen[0].losses
    assert terms["total"] == pytest.approx(
        terms["content"] + 5.0 * terms["style"] + 1e-2 * terms["tv"] + 500.0 * terms["grid"],
        rel=1e-5,
    )
    training = json.loads(load_style_model(config.output).meta["training"])
    assert training["grid_weight"] == 500.0


def test_anchor_term_pulls_towards_the_start_model_without_its_grid(
    config: TrainConfig, tmp_path: Path
) -> None:
    base = train(replace(config, steps=1, checkpoint_dir=None))
    tuned = replace(
        config,
        steps=2,
        init_model=base,
        anchor_weight=100.0,
        checkpoint_dir=None,
        output=tmp_path / "anchored.safetensors",
    )
    _, seen = _run(tuned)
    assert "anchor" in seen[0].losses and seen[0].losses["anchor"] >= 0
    assert json.loads(load_style_model(tuned.output).meta["training"])["anchor_weight"] == 100
    with pytest.raises(ParameterError, match="init_model"):
        train(replace(config, anchor_weight=1.0, checkpoint_dir=None))


def test_fine_tuning_a_lite_model_keeps_its_architecture(
    config: TrainConfig, tmp_path: Path
) -> None:
    from nst_core.transformer_net import TransformerNet, save_style_model

    lite = save_style_model(
        tmp_path / "lite.safetensors", TransformerNet((8, 12, 16), 1), {"name": "lite"}
    )
    path = train(replace(config, steps=1, init_model=lite, checkpoint_dir=None))
    net = load_style_model(path).net
    assert (net.widths, net.blocks) == ((8, 12, 16), 1)


def test_loss_weights_hold_for_a_rescaled_vgg(config: TrainConfig, tmp_path: Path) -> None:
    """Activations x64 (~100x between Caffe- and torchvision-trained VGG16): same losses.

    A power of two, so the scaling is exact in bf16 too (``nst_core.precision``)."""
    state = load_file(str(config.vgg_weights))
    scaled = {k: v * 64 if (k == "0.weight" or k.endswith("bias")) else v for k, v in state.items()}
    scaled_path = tmp_path / "vgg16_scaled.safetensors"
    save_file(scaled, str(scaled_path))
    _, original = _run(replace(config, steps=2, checkpoint_dir=None))
    _, rescaled = _run(replace(config, steps=2, checkpoint_dir=None, vgg_weights=scaled_path))
    for a, b in zip(original, rescaled, strict=True):
        for term in ("content", "style", "total"):
            assert b.losses[term] == pytest.approx(a.losses[term], rel=1e-3), term


def test_bad_inputs_raise_clear_errors(config: TrainConfig, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="style image not found"):
        train(replace(config, style_images=[tmp_path / "missing.jpg"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParameterError, match="no training photos"):
        train(replace(config, data_dir=empty))
    with pytest.raises(ParameterError, match="steps"):
        train(replace(config, steps=0))
    with pytest.raises(ParameterError, match="name"):
        train(replace(config, name="../evil"))
