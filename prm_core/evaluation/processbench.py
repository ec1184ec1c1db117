"""ProcessBench's metric, exactly as the official rule (algorithms.md §1.1; peers.md §3.2).

* prediction from step scores p_0..p_{n-1} and a threshold τ: the first i with p_i < τ, else -1;
* per split: acc_err = share of erroneous samples whose prediction equals the label (the exact first-error
  index), acc_cor = share of all-correct samples predicted -1, F1 = 2·acc_err·acc_cor / (acc_err + acc_cor)
  (a harmonic mean of two accuracies, not precision/recall);
* the threshold is chosen on a dev split and applied to test; τ = 0.5 is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_THRESHOLDS = tuple(i / 100 for i in range(1, 100))


@dataclass(frozen=True)
class F1Result:
    acc_err: float
    acc_cor: float
    f1: float
    n_err: int
    n_cor: int


def predict_first_error(scores: Sequence[float], tau: float) -> int:
    """The first step whose score is below τ, or -1."""
    return next((i for i, p in enumerate(scores) if p < tau), -1)


def f1_score(predictions: Sequence[int], labels: Sequence[int]) -> F1Result:
    """Official ProcessBench F1 of predicted vs labelled first errors (-1 = all correct)."""
    err = [(p, y) for p, y in zip(predictions, labels) if y != -1]
    cor = [(p, y) for p, y in zip(predictions, labels) if y == -1]
    acc_err = sum(p == y for p, y in err) / len(err) if err else 0.0
    acc_cor = sum(p == -1 for p, _ in cor) / len(cor) if cor else 0.0
    f1 = 2 * acc_err * acc_cor / (acc_err + acc_cor) if acc_err + acc_cor > 0 else 0.0
    return F1Result(acc_err, acc_cor, f1, len(err), len(cor))


def f1_at(step_scores: Sequence[Sequence[float]], labels: Sequence[int], tau: float) -> F1Result:
    return f1_score([predict_first_error(s, tau) for s in step_scores], labels)


def choose_threshold(step_scores: Sequence[Sequence[float]], labels: Sequence[int],
                     thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> float:
    """The τ maximising F1 on this (dev) split; ties go to the τ closest to 0.5."""
    return max(thresholds, key=lambda t: (f1_at(step_scores, labels, t).f1, -abs(t - 0.5)))
