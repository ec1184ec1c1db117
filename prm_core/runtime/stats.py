"""Small statistics every comparison shares (ActPRM's seeds, paired benchmark differences): mean ± s.e., paired
differences, a two-s.e. separability rule and seeded bootstrap draws. Plain Python over lists of floats."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean, sd/√n (0 for fewer than two values)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of a_i − b_i over the same rows, and its s.e. (rows paired by position)."""
    if len(a) != len(b):
        raise ValueError(f"paired rows differ in number: {len(a)} and {len(b)}")
    return mean_se([x - y for x, y in zip(a, b)])


def separable(diff: float, se: float) -> bool:
    """A difference beyond two standard errors (a zero s.e. separates any non-zero difference)."""
    return abs(diff) > 2 * se


def bootstrap_draws(n: int, resamples: int, seed: int) -> list[list[int]]:
    """`resamples` seeded draws of n row indices with replacement (one list shared by everything compared)."""
    rng = random.Random(f"bootstrap-{seed}")
    return [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]


def bootstrap_se(values: Sequence[float]) -> float:
    """The bootstrap s.e. of a statistic: its standard deviation over the resamples."""
    return mean_se(values)[1] * math.sqrt(len(values))
