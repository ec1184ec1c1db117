"""ActPRM's uncertainty of a trajectory from its ensemble's step probabilities (algorithms.md §3.3, paper Eq. 5).

For p_{e,t} = σ(z_{e,t}) over E heads and steps t:

    μ_t = mean_e p_{e,t},   σ_t = std_e p_{e,t} (unbiased, Bessel's correction as torch's `.std`)
    f = min{t : μ_t < 0.5}, else T - 1         (steps after the first predicted error are ignored)
    aleatoric  ⇔ ∃ t ≤ f : max(μ_t, 1 − μ_t) < δ_pred
    epistemic  ⇔ ∃ t ≤ f : σ_t > δ_std
    selected   ⇔ aleatoric or epistemic     (confident trajectories are neither labelled nor trained on)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Uncertainty:
    selected: bool
    aleatoric: bool
    epistemic: bool
    first_predicted_error: int  # -1 when every step has μ_t ≥ 0.5
    max_std: float  # over the considered steps
    min_confidence: float  # min_t max(μ_t, 1 − μ_t) over the considered steps


def trajectory_uncertainty(probs: torch.Tensor, delta_pred: float, delta_std: float) -> Uncertainty:
    """`probs` [E, T]: one trajectory's per-head step probabilities."""
    mu = probs.mean(0)
    sigma = probs.std(0, unbiased=True) if probs.shape[0] > 1 else torch.zeros_like(mu)
    wrong = (mu < 0.5).nonzero()
    f = int(wrong[0]) if len(wrong) else -1
    upto = f + 1 if f >= 0 else len(mu)
    confidence = torch.maximum(mu, 1 - mu)[:upto]
    alea = bool((confidence < delta_pred).any())
    epis = bool((sigma[:upto] > delta_std).any())
    return Uncertainty(alea or epis, alea, epis, f, float(sigma[:upto].max()) if upto else 0.0,
                       float(confidence.min()) if upto else 1.0)


def select(per_trajectory: list[torch.Tensor], delta_pred: float, delta_std: float) -> list[Uncertainty]:
    return [trajectory_uncertainty(p, delta_pred, delta_std) for p in per_trajectory]
