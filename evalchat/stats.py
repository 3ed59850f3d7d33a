"""Percentile bootstrap over items (pure Python, seeded: the same data gives the same interval)."""

from __future__ import annotations

import random
from collections.abc import Sequence

RESAMPLES = 2000


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and the percentile interval of the means of resampled items."""
    if not values:
        raise ValueError("bootstrap of no values")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[round((1 - tail) * (resamples - 1))]
    return mean(values), low, high
