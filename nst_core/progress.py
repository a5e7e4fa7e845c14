"""Progress reporting and cooperative cancellation shared by every long-running method."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nst_core.errors import Cancelled


@dataclass
class Progress:
    step: int
    total: int
    stage: str = ""
    losses: dict[str, float] = field(default_factory=dict)
    preview: torch.Tensor | None = None  # [1, 3, h, w] in [0, 1], downscaled


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """Set from any thread; the running method raises ``Cancelled`` at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("the job was cancelled")


def check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()
