"""The time left of a job whose steps differ in cost (``StepClock``), judged on recorded
and synthetic step times, never on this machine's clock."""

from __future__ import annotations

import pytest

from nst_core.progress import StepClock


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(costs: list[float], seconds: list[float]) -> list[tuple[float, float | None]]:
    """(true seconds left, estimate) after each step of a recorded run."""
    clock = FakeClock()
    eta = StepClock(costs, clock=clock)
    total = sum(seconds)
    out = []
    for s in seconds:
        clock.now += s
        out.append((total - clock.now, eta.step()))
    return out


def worst_error_from(points: list[tuple[float, float | None]], total: float, start: float):
    """Largest relative error of the estimate once ``start`` of the time has gone."""
    worst = 0.0
    for left, estimate in points:
        if total - left >= start * total and left > 0.02 * total:
            assert estimate is not None
            worst = max(worst, abs(estimate - left) / left)
    return worst


def coarse_to_fine(step_s: dict[int, float], steps: dict[int, int], forward_s: dict[int, float]):
    costs, seconds = [], []
    for size in sorted(steps):
        costs += [forward_s[size]] * steps[size]
        seconds += [step_s[size]] * steps[size]
    return costs, seconds


def test_coarse_to_fine_estimate_is_within_25_percent_from_20_percent_on() -> None:
    # step times as measured at 128, 256 and 512 px on a 2-core CPU; forward passes at
    # those sizes took 0.16, 0.45 and 1.2 s (relative costs: the estimator's only hint)
    step_s = {128: 0.55, 256: 1.4, 512: 3.9}
    forward_s = {128: 0.16, 256: 0.45, 512: 1.2}
    costs, seconds = coarse_to_fine(step_s, {128: 100, 256: 40, 512: 20}, forward_s)
    points = replay(costs, seconds)
    assert worst_error_from(points, sum(seconds), 0.2) < 0.25
    assert points[-1] == (0.0, 0.0)


def test_elapsed_over_steps_would_underestimate() -> None:
    """The old estimate (elapsed / steps done * steps left) on the same run: far too low."""
    step_s = {128: 0.55, 256: 1.4, 512: 3.9}
    steps = {128: 100, 256: 40, 512: 20}
    _, seconds = coarse_to_fine(step_s, steps, {128: 1, 256: 1, 512: 1})
    n, total = len(seconds), sum(seconds)
    i, elapsed = 0, 0.0
    while elapsed < 0.2 * total:
        elapsed += seconds[i]
        i += 1
    naive = elapsed / i * (n - i)
    assert naive < 0.6 * (total - elapsed)


def test_noisy_steps_and_a_wrong_cost_hint() -> None:
    """Noise of +-30 % per step and a cost hint 30 % off for the last size: still within
    25 % from 20 % on, because each size's own speed replaces the hint once it starts."""
    import random

    rng = random.Random(1)
    costs, seconds = [], []
    for n, step, hint in ((120, 0.5, 0.16), (50, 1.5, 0.45), (15, 4.0, 1.2 * 1.3)):
        costs += [hint] * n
        seconds += [step * rng.uniform(0.7, 1.3) for _ in range(n)]
    points = replay(costs, seconds)
    assert worst_error_from(points, sum(seconds), 0.2) < 0.25


def test_single_size_and_edge_cases() -> None:
    points = replay([1.0] * 10, [2.0] * 10)
    assert [round(e, 6) for _, e in points] == [18, 16, 14, 12, 10, 8, 6, 4, 2, 0]
    clock = FakeClock()
    eta = StepClock([1.0, 1.0], clock=clock)
    assert eta.step() is None  # no time has passed: no speed yet
    clock.now = 1.0
    assert eta.step() == 0.0 and eta.step() == 0.0  # past the end stays 0
    with pytest.raises(ValueError):
        StepClock([1.0, 0.0])
