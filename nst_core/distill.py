"""Distillation of a fast-style network into a lite one: same layout, fewer channels.

The teacher (a full model) stylises a fixed set of crops of the training photos once;
the student, a :class:`~nst_core.transformer_net.TransformerNet` with smaller widths and
fewer residual blocks, learns to reproduce those results in pixel space (mean squared
error on RGB in 0..1, plus an optional total-variation term), with Adam and a cosine
learning-rate decay. With ``notch_grid`` the teacher's results first lose the network's
4-pixel grid (:func:`remove_grid`), so the student is never shown it.

Resumable: the crops and the teacher's results are kept in ``work_dir`` (computed once),
a checkpoint every ``checkpoint_every`` steps; the batches are a function of (seed, step),
so a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from nst_core.atomic import atomic_write
from nst_core.errors import ParameterError
from nst_core.losses import GRID_PERIOD, remove_grid, total_variation
from nst_core.progress import Progress, ProgressCallback
from nst_core.train import _open_rgb, _photo_files, _sha256, _start_mid_grey, random_crop
from nst_core.transformer_net import TransformerNet, load_style_model, save_style_model

CHECKPOINT_VERSION = 1
#: The lite network: a sixth of the full network's multiply-adds per pixel (26k, not 154k),
#: with 8 channels at full resolution, where a narrow layer costs the most time.
LITE_WIDTHS = (8, 32, 64)
LITE_BLOCKS = 3


@dataclass
class DistillConfig:
    teacher: Path  # the full model
    data_dir: Path  # training photos
    output: Path  # the lite model file written at the end
    work_dir: Path  # crops, teacher results and checkpoints (outside the repository)
    widths: tuple[int, int, int] = LITE_WIDTHS
    blocks: int = LITE_BLOCKS
    crops: int = 384  # fixed crops of the training photos
    crop_size: int = 192
    steps: int = 1500
    batch_size: int = 8
    lr: float = 2e-3  # decays to 0 along a cosine
    tv_weight: float = 0.0
    notch_grid: bool = True
    seed: int = 0
    checkpoint_every: int = 100
    extra_meta: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        for key in ("crops", "steps", "batch_size", "checkpoint_every", "blocks"):
            if getattr(self, key) < (0 if key == "blocks" else 1):
                raise ParameterError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.crop_size < 32 or self.crop_size % GRID_PERIOD:
            raise ParameterError(f"crop_size {self.crop_size}: a multiple of 4, at least 32")
        if not math.isfinite(self.lr) or self.lr <= 0 or self.tv_weight < 0:
            raise ParameterError(f"lr {self.lr} must be > 0 and tv_weight {self.tv_weight} >= 0")
        if not Path(self.teacher).is_file():
            raise ParameterError(f"teacher model not found: {self.teacher}")

    def data_key(self) -> str:
        """Names the crops and teacher results: what they depend on."""
        text = json.dumps(
            [
                _sha256(Path(self.teacher)),
                str(self.data_dir),
                self.crops,
                self.crop_size,
                self.notch_grid,
                self.seed,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.no_grad()
def teacher_data(config: DistillConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed crops and the teacher's results on them, as uint8 ``[N, 3, S, S]``;
    computed once and kept in ``work_dir``."""
    path = Path(config.work_dir) / f"teacher-{config.data_key()}.pt"
    if path.exists():
        data = torch.load(path, weights_only=True)
        return data["inputs"], data["targets"]
    from nst_core.fast import runner_for

    files = _photo_files(Path(config.data_dir))
    rng = random.Random(config.seed)
    teacher = load_style_model(config.teacher)
    runner = runner_for(teacher, "cpu")
    inputs, targets = [], []
    for _ in range(config.crops):
        crop = random_crop(_open_rgb(rng.choice(files)), config.crop_size, rng)[None]
        out = runner(crop)
        if config.notch_grid:
            out = remove_grid(out).clamp(0, 1)
        inputs.append(_to_u8(crop))
        targets.append(_to_u8(out))
    data = {"inputs": torch.cat(inputs), "targets": torch.cat(targets)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save(data, f)
    return data["inputs"], data["targets"]


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def batch_indices(config: DistillConfig, step: int) -> list[int]:
    """The crops of one step: a function of (seed, step) only."""
    return random.Random(config.seed * 1_000_003 + step).sample(
        range(config.crops), min(config.batch_size, config.crops)
    )


def lr_at(config: DistillConfig, step: int) -> float:
    return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))


def distill(config: DistillConfig, progress: ProgressCallback | None = None) -> Path:
    """Train (or resume) the lite student of ``config.teacher``; returns the model file."""
    config.validate()
    inputs, targets = teacher_data(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = TransformerNet(config.widths, config.blocks)
    _start_mid_grey(net)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    checkpoint = Path(config.work_dir) / f"{Path(config.output).name}.ckpt"
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        if state.get("version") != CHECKPOINT_VERSION or state.get("key") != config.data_key():
            raise ParameterError(f"{checkpoint}: checkpoint of other settings; delete it")
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])

    def save_checkpoint() -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(checkpoint) as f:
            torch.save(
                {
                    "version": CHECKPOINT_VERSION,
                    "key": config.data_key(),
                    "step": step,
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
                f,
            )

    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, step)
        index = batch_indices(config, step)
        x = inputs[index].float() / 255
        target = targets[index].float() / 255
        y = net(x * 255) / 255
        terms = {"pixel": F.mse_loss(y, target)}
        total = terms["pixel"]
        if config.tv_weight:
            terms["tv"] = total_variation(y)
            total = total + config.tv_weight * terms["tv"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step += 1
        if step % config.checkpoint_every == 0:
            save_checkpoint()
        if progress is not None:
            losses = {k: float(v.detach()) for k, v in terms.items()}
            progress(Progress(step, config.steps, "distill", losses))
    save_checkpoint()
    return save_style_model(config.output, net, lite_metadata(config, step), half=True)


def lite_metadata(config: DistillConfig, steps_done: int) -> dict[str, object]:
    """The teacher's painting, licence and style settings, and how the student was made."""
    teacher = load_style_model(config.teacher)
    teacher_training = json.loads(teacher.meta.get("training", "{}"))
    settings = asdict(config)
    training = {
        "method": "distillation",
        "steps": steps_done,
        **{
            k: settings[k]
            for k in ("crops", "crop_size", "batch_size", "lr", "tv_weight", "notch_grid", "seed")
        },
        # what the quality tools read: the painting and its size, the teacher's
        "style_images": teacher_training.get("style_images", []),
        "style_size": teacher_training.get("style_size", 512),
        "teacher_training": teacher_training,
    }
    meta: dict[str, object] = {
        k: teacher.meta[k]
        for k in ("name", "title", "artist", "year", "licence", "vgg")
        if k in teacher.meta
    }
    meta.update(
        {
            "variant": "lite",
            "teacher": {
                "file": Path(config.teacher).name,
                "name": teacher.meta.get("name", ""),
                "sha256": _sha256(Path(config.teacher)),
            },
            "training": training,
        }
    )
    meta.update(config.extra_meta)
    return meta


__all__ = ["DistillConfig", "distill", "remove_grid", "teacher_data", "LITE_WIDTHS", "LITE_BLOCKS"]
