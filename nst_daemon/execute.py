"""From a validated request to an engine run and back: the daemon's worker, the CLI's
``--local`` mode, ``nst batch`` (in-process or on Ray) and the bench all run jobs here.

The request's pictures become tensors, the daemon's resident networks (``Models``) are
looked up, and :func:`nst_core.pipeline.stylize` runs the job; the result becomes
pixels of the input's channels and dtype again (alpha passed through unchanged).
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nst_client.params import FastParams
from nst_client.protocol import Image, StylizeRequest, TrainRequest
from nst_core.errors import OutOfMemoryError, WeightsMissingError
from nst_core.memory import is_out_of_memory
from nst_core.progress import CancelToken, Progress, ProgressCallback

from .advice import with_advice
from .models import Models

if TYPE_CHECKING:
    from nst_core.pipeline import Network
    from nst_core.styles import ChosenModel
    from nst_core.transformer_net import StyleModel


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the device's out-of-memory errors into ``OutOfMemoryError`` (code out_of_memory)
    and add the advice to a ``WeightsMissingError``."""
    try:
        yield
    except WeightsMissingError as exc:
        raise WeightsMissingError(with_advice(exc.code, str(exc))) from exc
    except torch.cuda.OutOfMemoryError as exc:
        raise OutOfMemoryError(
            "the GPU ran out of memory; use params.max_size, params.tile_size or a smaller image"
        ) from exc
    except (RuntimeError, MemoryError) as exc:
        if is_out_of_memory(exc):
            raise OutOfMemoryError(
                f"out of memory ({exc}); use params.max_size or a smaller image"
            ) from exc
        raise


def _tensors(image: Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    from nst_core.images import from_pixels

    return from_pixels(image.data, image.width, image.height, image.channels, image.dtype)


def _report(progress: ProgressCallback | None, stage: str) -> None:
    if progress is not None:
        progress(Progress(0, 0, stage))


def fast_model_file(style: str, speed: str, device: torch.device) -> ChosenModel:
    """The model file of the catalogue style ``style`` that runs at ``speed`` (the
    request's ``FastParams.speed``) on ``device``: ``nst_core.styles.choose_variant``."""
    from nst_core.styles import choose_variant, find_style

    return choose_variant(find_style(style), speed, device)


def _fast_model(
    style: str, speed: str, models: Models, progress: ProgressCallback | None
) -> tuple[StyleModel, ChosenModel]:
    chosen = fast_model_file(style, speed, models.device)
    if not models.has_fast_model(chosen.path):
        _report(progress, "loading")
    return models.fast_model(chosen.path), chosen


def _clip_network(
    model: StyleModel, path: Path, params: FastParams, models: Models, cancel: CancelToken | None
) -> Network:
    """A frame of a video: consistent with the clip's previous frame (``nst_daemon.video``)."""
    from .video import clip_frame

    def network(content: torch.Tensor) -> torch.Tensor:
        return clip_frame(model, path, content, params, models.device, cancel)

    return network


def _run(
    content: torch.Tensor,
    mask: torch.Tensor | None,
    request: StylizeRequest,
    models: Models,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> tuple[torch.Tensor, str | None]:
    """The request's networks and settings, handed to the pipeline; returns the picture
    and the fast-style variant that made it (``None`` for Gatys)."""
    from nst_core.pipeline import stylize

    params = request.params
    run = functools.partial(
        stylize,
        content,
        max_size=params.max_size,
        preserve_colors=params.preserve_colors,
        strength=params.strength,
        mask=mask,
        device=models.device,
        progress=progress,
        cancel=cancel,
    )
    if isinstance(params, FastParams):
        assert request.style is not None  # checked by StylizeRequest
        model, chosen = _fast_model(request.style, params.speed, models, progress)
        network = None
        if params.clip is not None:
            network = _clip_network(model, chosen.path, params, models, cancel)
        styled = run(method="fast", model=model, network=network, tile_size=params.tile_size)
        return styled, chosen.variant

    from nst_core.gatys import GatysParams, style_cache_key

    names = ("iterations", "style_strength", "style_scale", "optimizer", "seed", "preview_every")
    overrides: dict[str, Any] = {k: getattr(params, k) for k in names}
    if params.iterations is None:  # the quality preset's
        del overrides["iterations"]
    if params.init != "fast":
        overrides["init"] = params.init
    gatys_params = GatysParams.preset(params.quality, **overrides)
    weights = params.style_weights or [1.0] * len(request.style_images)
    styles = [(_tensors(s)[0], w) for s, w in zip(request.style_images, weights, strict=True)]
    init_model = None
    if params.init == "fast":
        init_style = params.init_style or request.style
        assert init_style is not None  # checked by StylizeRequest
        init_model = _fast_model(init_style, "best", models, None)[0]  # the full network
    if not models.has_vgg:
        _report(progress, "loading")
    vgg = models.vgg()
    targets = models.style_targets(style_cache_key(vgg, styles, gatys_params))
    styled = run(
        method="gatys",
        styles=styles,
        vgg=vgg,
        gatys=gatys_params,
        init_model=init_model,
        targets=targets,
    )
    return styled, None


def execute_stylize(
    request: StylizeRequest,
    models: Models,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run one stylisation (``nst_core.pipeline.stylize``); returns
    ``{"image": Image, "timings": {...}, "variant": str | None}``: the input's size,
    channels and dtype, alpha passed through unchanged; the fast-style network that ran
    (``"full"``/``"lite"``, ``None`` for Gatys)."""
    from nst_core.images import to_pixels

    image = request.image
    started = time.perf_counter()
    with engine_errors():
        rgb, alpha = _tensors(image)
        mask = _tensors(request.mask)[0][:, :1] if request.mask is not None else None
        decoded = time.perf_counter()
        styled, variant = _run(rgb, mask, request, models, progress, cancel)
        ran = time.perf_counter()
        data = to_pixels(styled, alpha, image.channels, image.dtype)
    done = time.perf_counter()
    result = Image(image.width, image.height, image.channels, data, image.dtype)
    timings = {
        "decode_s": decoded - started,
        "run_s": ran - decoded,
        "encode_s": done - ran,
        "total_s": done - started,
    }
    return {"image": result, "timings": timings, "variant": variant}


def execute_train(
    request: TrainRequest,
    models: Models,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Train a fast-style model from the request's painting into the user styles folder."""
    from nst_core.images import save_image
    from nst_core.train import TrainConfig, train

    params = request.params.engine_options()
    dataset = Path(request.params.dataset)
    started = time.perf_counter()
    with engine_errors(), tempfile.TemporaryDirectory(prefix="nst-train-") as tmp:
        style_path = save_image(Path(tmp) / "style.png", _tensors(request.style_image)[0])
        config = TrainConfig(
            style_images=[style_path],
            data_dir=dataset,
            name=request.name,
            device=str(models.device),
            vgg_weights=Path(models.vgg_weights) if models.vgg_weights is not None else None,
            overwrite=request.overwrite,
            **params,
        )
        path = train(config, progress=progress, cancel=cancel)
    return {
        "style": request.name,
        "path": str(path),
        "timings": {"total_s": time.perf_counter() - started},
    }
