"""Resident networks of one device: VGG shared by every Gatys job, fast-style models in
an LRU, and style Gram targets cached by style-image hash and parameters.

Thread-safe: the worker of a device loads models while the server thread reads
``loaded()`` for ``status`` replies.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nst_core.devices import release_memory, resolve_device
from nst_core.memory import keep_freed_memory
from nst_core.transformer_net import StyleModel, load_style_model
from nst_core.vgg import VGGFeatures


class _LRU(OrderedDict[str, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def get_or_make(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        while len(self) > self.capacity:
            self.popitem(last=False)
        return value


def _loaded_name(model: StyleModel) -> str:
    """A resident model's name in ``status`` replies: a lite network as ``NAME (lite)``."""
    name = model.meta.get("name", "")
    return f"{name} (lite)" if model.meta.get("variant") == "lite" else name


class Models:
    """Models kept on one device between jobs."""

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        fast_capacity: int = 8,
        targets_capacity: int = 16,
        vgg_weights: str | Path | None = None,
    ) -> None:
        self.device = resolve_device(device)
        keep_freed_memory()  # activations of one size reuse warm pages, job after job
        self.vgg_weights = vgg_weights
        self._fast = _LRU(fast_capacity)  # StyleModel by file and mtime
        self._targets = _LRU(targets_capacity)  # style key -> {long side: Gram targets}
        self._vgg: VGGFeatures | None = None
        self._lock = threading.RLock()

    @staticmethod
    def _fast_key(path: Path) -> str:
        return f"{path.resolve()}:{path.stat().st_mtime_ns}"  # a re-imported style reloads

    def has_fast_model(self, path: Path) -> bool:
        with self._lock:
            return self._fast_key(path) in self._fast

    def fast_model(self, path: Path) -> StyleModel:
        def load() -> StyleModel:
            model = load_style_model(path)
            model.net.to(self.device)
            return model

        with self._lock:
            return self._fast.get_or_make(self._fast_key(path), load)

    @property
    def has_vgg(self) -> bool:
        return self._vgg is not None

    def vgg(self) -> VGGFeatures:
        with self._lock:
            if self._vgg is None:
                self._vgg = VGGFeatures("vgg16", weights=self.vgg_weights).to(self.device)
            return self._vgg

    def style_targets(self, key: str) -> dict[int, Any]:
        """The Gram-target cache for one set of styles (see ``nst_core.gatys.style_cache_key``)."""
        with self._lock:
            return self._targets.get_or_make(key, dict)

    def loaded(self) -> dict[str, Any]:
        with self._lock:
            return {
                "vgg": self._vgg is not None,
                "fast": [_loaded_name(model) for model in self._fast.values()],
                "style_targets": len(self._targets),
            }

    def release_memory(self) -> None:
        """Give cached, unused device and host memory back (when idle, and after an OOM)."""
        release_memory(self.device)
