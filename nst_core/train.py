"""Training fast-style networks with the perceptual loss of Johnson et al. (2016).

A ``TransformerNet`` learns to map photos to the style of a painting: content loss on
one VGG16 layer against the photo, style loss (Gram matrices) on four layers against the
painting, total variation for smoothness; Adam on random square crops of a photo folder.
The loss terms come from ``nst_core.losses`` and are normalised there, so the default
weights hold for any VGG16 weights file whatever its activation scale.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from nst_client.names import style_name_problem
from nst_core.atomic import atomic_write
from nst_core.devices import resolve_device
from nst_core.errors import Cancelled, ImageError, ParameterError
from nst_core.images import from_pixels, load_image, resize, save_image
from nst_core.losses import (
    JOHNSON_CONTENT_LAYER,
    JOHNSON_STYLE_WEIGHTS,
    blend_grams,
    content_loss,
    grams,
    grid_power,
    remove_grid,
    style_loss,
    total_variation,
)
from nst_core.pillow_modes import IMAGE_EXTENSIONS
from nst_core.precision import loss_network_features
from nst_core.progress import CancelToken, Progress, ProgressCallback, check
from nst_core.styles import new_style_path
from nst_core.transformer_net import TransformerNet, load_style_model, save_style_model
from nst_core.vgg import VGGFeatures, resolve_weights

IMAGE_SUFFIXES = IMAGE_EXTENSIONS  # the one list of picture files
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Everything one training run needs; also recorded (in part) in the model's metadata."""

    style_images: list[Path]
    data_dir: Path
    name: str
    title: str = ""
    artist: str = ""
    year: str = ""
    licence: str = "public domain"
    output: Path | None = None  # default: the user styles folder, ``<name>.safetensors``
    steps: int = 2000
    batch_size: int = 4
    image_size: int = 256  # square training crops
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-2
    grid_weight: float = 0.0  # the 4-pixel grid term (``nst_core.losses.grid_power``)
    # Self-distillation: stay close (mean squared error, RGB in 0..1) to what init_model
    # paints, with its 4-pixel grid taken out (``nst_core.losses.remove_grid``).
    anchor_weight: float = 0.0
    content_layer: str = JOHNSON_CONTENT_LAYER
    style_layers: dict[str, float] = field(default_factory=lambda: dict(JOHNSON_STYLE_WEIGHTS))
    style_size: int = 512  # long side of the painting when its Gram matrices are taken
    vgg_weights: Path | None = None  # default: the installed VGG16 weights
    seed: int = 0
    checkpoint_dir: Path | None = None  # resume from / save to ``<dir>/<name>.ckpt``
    checkpoint_every: int = 200
    preview_every: int = 0  # 0: no previews
    preview_dir: Path | None = None  # also save previews as PNG here
    init_model: Path | None = None  # fine-tune from this model file
    device: str | None = None  # default: nst_core.devices.default_device()
    overwrite: bool = False  # may replace an existing *user* style of the same name
    extra_meta: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        problem = style_name_problem(self.name)
        if problem is not None:
            raise ParameterError(f"style name {self.name!r} {problem}")
        if not self.style_images:
            raise ParameterError("give at least one style image")
        for path in self.style_images:
            if not Path(path).is_file():
                raise ImageError(f"style image not found: {path}")
        if not str(self.data_dir) or not Path(self.data_dir).is_absolute():
            raise ParameterError(
                f"the training photo folder must be an absolute path, not {str(self.data_dir)!r}"
            )
        if not Path(self.data_dir).is_dir():
            raise ParameterError(f"training photo folder not found: {self.data_dir}")
        for key in ("steps", "batch_size", "image_size", "style_size", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ParameterError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.image_size < 32:
            raise ParameterError(f"image_size must be at least 32 pixels, not {self.image_size}")
        for key in (
            "lr",
            "content_weight",
            "style_weight",
            "tv_weight",
            "grid_weight",
            "anchor_weight",
        ):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ParameterError(f"{key} must be a finite number >= 0, not {value}")
        if (
            not self.style_layers
            or any(w < 0 for w in self.style_layers.values())
            or sum(self.style_layers.values()) <= 0
        ):
            raise ParameterError(
                f"style_layers must map layer names to weights >= 0 with a positive sum, "
                f"not {self.style_layers}"
            )
        if self.preview_every < 0:
            raise ParameterError("preview_every must be >= 0")


def _photo_files(data_dir: Path) -> list[Path]:
    """Every photo under ``data_dir``; folders that vanish or cannot be read are skipped."""
    files = [
        Path(root) / name
        for root, _, names in os.walk(data_dir, onerror=lambda _: None)
        for name in names
        if Path(name).suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise ParameterError(
            f"no training photos in {data_dir} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return sorted(files)


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageError(f"training photo {path} is too large to decode safely ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read training photo {path}: {exc}") from exc


def random_crop(img: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """Scale the short side to ``size`` .. ``1.5 * size`` at random, then crop a square."""
    short = rng.randint(size, int(size * 1.5))
    scale = short / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BICUBIC)
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    crop = img.crop((left, top, left + size, top + size))
    return from_pixels(crop.tobytes(), size, size, 3)[0][0]


def load_style_image(path: Path, long_side: int) -> torch.Tensor:
    """The painting as ``[1, 3, h, w]`` in [0, 1], its long side scaled to ``long_side``."""
    image, _ = load_image(path)
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    return resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def batch_for_step(files: list[Path], config: TrainConfig, step: int) -> torch.Tensor:
    """The crops of one step; a function of (seed, step) only, so a resumed run sees
    exactly the batches an uninterrupted one would."""
    rng = random.Random(config.seed * 1_000_003 + step)
    crops = [
        random_crop(_open_rgb(rng.choice(files)), config.image_size, rng)
        for _ in range(config.batch_size)
    ]
    return torch.stack(crops)


def prefetched_batches(
    files: list[Path], config: TrainConfig, start: int
) -> Generator[torch.Tensor, None, None]:
    """``batch_for_step`` for steps ``start``, ``start + 1``, ... up to ``config.steps``,
    prepared ahead in threads (PIL decodes and resizes without the GIL), so a fast GPU
    does not wait for JPEG decoding."""
    workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="nst-train-data")
    ahead: deque = deque()
    try:
        for step in range(start, config.steps):
            while len(ahead) < 2 * workers and step + len(ahead) < config.steps:
                ahead.append(pool.submit(batch_for_step, files, config, step + len(ahead)))
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_metadata(config: TrainConfig, vgg_path: Path, steps_done: int) -> dict[str, object]:
    """What a model file says about itself: the painting, its licence and how it was made."""
    training = {
        "method": "johnson2016",
        "steps": steps_done,
        "batch_size": config.batch_size,
        "image_size": config.image_size,
        "style_size": config.style_size,
        "lr": config.lr,
        "content_weight": config.content_weight,
        "style_weight": config.style_weight,
        "tv_weight": config.tv_weight,
        "grid_weight": config.grid_weight,
        "anchor_weight": config.anchor_weight,
        "content_layer": config.content_layer,
        "style_layers": dict(config.style_layers),
        "style_images": [Path(p).name for p in config.style_images],
        "seed": config.seed,
    }
    if config.init_model is not None:
        training["fine_tuned_from"] = Path(config.init_model).stem
        earlier = load_style_model(config.init_model).meta.get("training")
        if earlier:  # the whole chain of runs that made this model
            training["earlier_training"] = json.loads(earlier)
    meta: dict[str, object] = {
        "name": config.name,
        "title": config.title,
        "artist": config.artist,
        "year": config.year,
        "licence": config.licence,
        "training": training,
        "vgg": {"arch": "vgg16", "weights": vgg_path.name, "sha256": _sha256(vgg_path)},
    }
    meta.update(config.extra_meta)
    return meta


def _start_mid_grey(net: TransformerNet) -> None:
    """Let a fresh network start from mid-grey with visible texture (0..255 output).

    With the default initialisation the output is within about +-1 of black, and Adam
    spends the first hundred or so steps just growing the output range.
    """
    with torch.no_grad():
        output = net.deconv3.conv2d
        output.weight.mul_(50.0)
        if output.bias is not None:
            output.bias.fill_(127.5)


class _Trainer:
    """One run's state: networks, targets, optimiser. ``run`` is the loop."""

    def __init__(
        self, config: TrainConfig, progress: ProgressCallback | None, cancel: CancelToken | None
    ) -> None:
        self.config = config
        self.progress = progress
        self.cancel = cancel
        self.device = resolve_device(config.device)
        self.amp = self.device.type == "cuda"
        self.files = _photo_files(config.data_dir)
        self.vgg_path = resolve_weights("vgg16", config.vgg_weights)
        layers = (config.content_layer, *config.style_layers)
        self.vgg = VGGFeatures("vgg16", layers, self.vgg_path).to(self.device)
        init = load_style_model(config.init_model) if config.init_model is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = (
                TransformerNet()
                if init is None
                else TransformerNet(init.net.widths, init.net.blocks)
            )
            self.net = net.to(self.device)
        if init is not None:  # fine-tune: the same architecture, its weights
            self.net.load_state_dict(init.net.state_dict())
        else:
            _start_mid_grey(self.net)
        self.anchor = None
        if config.anchor_weight:
            if init is None:
                raise ParameterError("anchor_weight needs init_model (the model to stay near)")
            self.anchor = init.net.to(self.device).eval().requires_grad_(False)
        self.net.train().requires_grad_(True)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.style_grams = self._style_targets()
        self.step = 0
        self.preview_input = batch_for_step(self.files, config, -1)[:1].to(self.device)

    def _vgg(self, x: torch.Tensor, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Loss-network features in float32: VGG in bf16 on CPUs that compute it natively,
        under the enclosing fp16 AMP on CUDA."""
        return loss_network_features(self.vgg, x, layers, enabled=not self.amp)

    @torch.no_grad()
    def _style_targets(self) -> dict[str, torch.Tensor]:
        """Gram matrices of the painting(s) per style layer, averaged over the images."""
        layers = list(self.config.style_layers)
        per_image = []
        for path in self.config.style_images:
            style = load_style_image(path, self.config.style_size).to(self.device)
            per_image.append((grams(self._vgg(style, layers), layers), 1.0))
        return blend_grams(per_image)

    @property
    def checkpoint_path(self) -> Path | None:
        if self.config.checkpoint_dir is None:
            return None
        return Path(self.config.checkpoint_dir) / f"{self.config.name}.ckpt"

    def save_checkpoint(self) -> None:
        path = self.checkpoint_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        with atomic_write(path) as out:
            torch.save(state, out)

    def resume(self) -> None:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ParameterError(f"{path}: checkpoint from an incompatible version; delete it")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Johnson et al. loss terms for a batch of photos ``x`` in [0, 1]."""
        cfg = self.config
        with torch.no_grad():
            target = self._vgg(x, [cfg.content_layer])[cfg.content_layer]
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            y = self.net(x * 255) / 255
            feats = self._vgg(y)
        y = y.float()
        terms = {
            "content": content_loss(feats[cfg.content_layer], target),
            "style": style_loss(grams(feats, cfg.style_layers), self.style_grams, cfg.style_layers),
            "tv": total_variation(y),
        }
        terms["total"] = (
            cfg.content_weight * terms["content"]
            + cfg.style_weight * terms["style"]
            + cfg.tv_weight * terms["tv"]
        )
        if cfg.grid_weight:
            terms["grid"] = grid_power(y)
            terms["total"] = terms["total"] + cfg.grid_weight * terms["grid"]
        if self.anchor is not None:
            with torch.no_grad():
                target = remove_grid(self.anchor(x * 255) / 255).clamp(0, 1)
            terms["anchor"] = (y - target).square().mean()
            terms["total"] = terms["total"] + cfg.anchor_weight * terms["anchor"]
        return terms

    def train_step(self, photos: torch.Tensor) -> dict[str, float]:
        x = photos.to(self.device, non_blocking=True)
        terms = self.losses(x)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        self.net.eval()
        out = (self.net(self.preview_input * 255) / 255).clamp(0, 1).float().cpu()
        self.net.train()
        if self.config.preview_dir is not None:
            Path(self.config.preview_dir).mkdir(parents=True, exist_ok=True)
            save_image(
                Path(self.config.preview_dir) / f"{self.config.name}-{self.step:06d}.png", out
            )
        return out

    def run(self) -> Path:
        cfg = self.config
        output = Path(cfg.output or new_style_path(cfg.name, overwrite=cfg.overwrite))
        self.resume()
        with closing(prefetched_batches(self.files, cfg, self.step)) as batches:
            while self.step < cfg.steps:
                try:
                    check(self.cancel)
                except Cancelled:
                    self.save_checkpoint()
                    raise
                losses = self.train_step(next(batches))
                if not all(math.isfinite(v) for v in losses.values()):
                    raise ParameterError(
                        f"training diverged at step {self.step} (loss {losses}); lower lr or the "
                        "style weight"
                    )
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                preview = None
                if cfg.preview_every and self.step % cfg.preview_every == 0:
                    preview = self.preview()
                if self.progress is not None:
                    self.progress(Progress(self.step, cfg.steps, "train", losses, preview))
        self.save_checkpoint()
        meta = model_metadata(cfg, self.vgg_path, self.step)
        return save_style_model(output, self.net, meta, half=True)


def train(
    config: TrainConfig, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
) -> Path:
    """Train (or resume, or fine-tune) a fast-style model; returns the model file written.

    With ``checkpoint_dir`` set, a checkpoint is written every ``checkpoint_every`` steps
    and on cancellation, and a later call with the same name continues from it.
    """
    config.validate()
    if config.output is None:  # refuse a taken name before any work starts
        new_style_path(config.name, overwrite=config.overwrite)
    return _Trainer(config, progress, cancel).run()


__all__ = ["TrainConfig", "train", "batch_for_step", "prefetched_batches", "load_style_image"]
