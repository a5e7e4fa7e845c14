"""Shared InstanceNorm statistics for the frames of a clip: a running estimate pooled
over the frames so far (:class:`RunningStats`, a :data:`nst_core.fast.StatsHook`) and
statistics pooled once over sample frames (:func:`pooled_stats`)."""

from __future__ import annotations

import torch

from nst_core.fast import EPS, NormStats


class RunningStats:
    """A :data:`nst_core.fast.StatsHook` pooling InstanceNorm statistics over frames.

    Keeps, per layer, the mean and the second moment ``E[x^2]`` (so the pooled variance
    includes the spread of the frames' means). Call :meth:`next_frame` before each frame.
    """

    def __init__(self, memory: int = 30) -> None:
        self.memory = memory
        self.frames = 0
        self.moments: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._rate = 1.0

    def reset(self) -> None:
        self.frames, self.moments = 0, []

    def next_frame(self) -> None:
        self._rate = max(1.0 / (self.frames + 1), 1.0 / self.memory)
        self.frames += 1

    @staticmethod
    def _moments(mean: torch.Tensor, invstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        var = (invstd.float().pow(-2) - EPS).clamp_min(0.0)
        mean = mean.float()
        return mean, var + mean * mean

    def __call__(
        self, index: int, mean: torch.Tensor, invstd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        m, q = self._moments(mean, invstd)
        if index >= len(self.moments) or self.moments[index][0].shape != m.shape:
            del self.moments[index:]
            self.moments.append((m, q))
            return None  # the first frame: its own statistics
        rate = self._rate
        pm, pq = self.moments[index]
        m, q = pm.lerp(m, rate), pq.lerp(q, rate)
        self.moments[index] = (m, q)
        return m, (q - m * m).clamp_min(0.0).add(EPS).rsqrt()


def pooled_stats(samples: list[NormStats]) -> NormStats:
    """Statistics of several images pooled per layer (mean of means and of ``E[x^2]``)."""
    pooled: NormStats = []
    for layer in zip(*samples, strict=True):
        moments = [RunningStats._moments(mean, invstd) for mean, invstd in layer]
        m = torch.stack([a for a, _ in moments]).mean(0)
        q = torch.stack([b for _, b in moments]).mean(0)
        pooled.append((m, (q - m * m).clamp_min(0.0).add(EPS).rsqrt()))
    return pooled
