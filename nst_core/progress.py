"""Progress reporting and cooperative cancellation shared by every long-running method."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
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
    eta_s: float | None = None  # the method's own estimate of the seconds left, if it has one


ProgressCallback = Callable[[Progress], None]


class StepClock:
    """Seconds left in a job whose steps differ in cost, e.g. a coarse-to-fine Gatys run.

    ``costs[i]`` is the relative cost of step ``i`` (only ratios matter: Gatys passes the
    time of one forward pass at each step's image size). The speed is learned from the
    steps done: seconds per unit of cost over the steps of the current cost (``group``)
    once there are ``settle`` of them, else over all steps so far; the time left is that
    speed times the cost of the steps to come. Dividing elapsed time by steps done instead
    underestimates a coarse-to-fine job badly: its early steps are the cheap ones.
    """

    def __init__(
        self,
        costs: Sequence[float],
        clock: Callable[[], float] = time.perf_counter,
        settle: int = 3,
    ) -> None:
        if any(c <= 0 for c in costs):
            raise ValueError("step costs must be positive")
        self.costs = [float(c) for c in costs]
        self.clock = clock
        self.settle = settle
        self._left = [0.0] * (len(self.costs) + 1)  # _left[i]: cost of steps i, i+1, ...
        for i in range(len(self.costs) - 1, -1, -1):
            self._left[i] = self._left[i + 1] + self.costs[i]
        self.done = 0
        self._start = self._last = clock()
        self._group_start = (0, self._start)  # (first step, time) of the current cost

    def restart(self) -> None:
        """Start timing now (call just before the first step, after any setup)."""
        self._start = self._last = self.clock()
        self._group_start = (self.done, self._start)

    def step(self) -> float | None:
        """Mark one more step done; returns the estimated seconds left (None: unknown)."""
        if self.done >= len(self.costs):
            return 0.0
        now = self.clock()
        i = self.done
        self.done += 1
        if i > 0 and self.costs[i] != self.costs[i - 1]:
            self._group_start = (i, self._last)  # this step is the first of a new cost
        self._last = now
        first, since = self._group_start
        if self.done - first >= self.settle or first == 0:
            seconds, cost = now - since, self._left[first] - self._left[self.done]
        else:
            seconds, cost = now - self._start, self._left[0] - self._left[self.done]
        if seconds <= 0 or cost <= 0:
            return None
        return seconds / cost * self._left[self.done]


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
