"""Pool-based active learning with a cold start (ActPRM Algorithm 1, algorithms.md §3.3 and §3.8).

One pass over a pool of trajectories in seeded batches: the ensemble scores each batch, the uncertain
trajectories (and only they) go to the judge, and one optimizer step trains the heads on what the judge labelled.
An all-confident batch takes no step (never a NaN loss). The same loop with `select=False` is the full-data
baseline (every trajectory labelled), and `train_on` trains on a fixed subset (random selection at a budget), for one
pass or for as many optimizer steps as an active pass took.
Inputs are per-trajectory step features from a frozen backbone (`discriminative.step_inputs`), computed once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from prm_core.active.judges import Trajectory, hard_labels
from prm_core.active.uncertainty import Uncertainty, trajectory_uncertainty
from prm_core.prm.ensemble import EnsembleHeads, EnsembleTrainConfig, ensemble_loss, probabilities_each


@dataclass(frozen=True)
class ActiveConfig:
    delta_pred: float = 0.9  # ActiveSFTConfig's defaults; choose them on a dev split (`choose_thresholds`)
    delta_std: float = 0.01
    batch_size: int = 16
    select: bool = True  # False: the full-data baseline, every trajectory labelled and trained on
    train: EnsembleTrainConfig = field(default_factory=EnsembleTrainConfig)


@dataclass(frozen=True)
class Decision:
    """What active learning did with one trajectory: why it was (not) sent to the judge, and the answer."""

    response_id: str
    batch: int
    uncertainty: Uncertainty
    labelled: bool
    judge_first_error: int | None  # None: not sent, or the judge's answer was unusable


def _step(heads: EnsembleHeads, opt, xs: list[torch.Tensor], labels: list[list[float]], cfg: EnsembleTrainConfig,
          gen: torch.Generator) -> float:
    x = torch.cat([xi[: len(y)] for xi, y in zip(xs, labels)])
    y = torch.tensor([v for ys in labels for v in ys])
    sample = torch.cat([torch.full((len(ys),), i) for i, ys in enumerate(labels)])
    loss = ensemble_loss(heads, x, y, sample, cfg, gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def active_pass(heads: EnsembleHeads, inputs: list[torch.Tensor], trajectories: list[Trajectory], judge,
                cfg: ActiveConfig, seed: int = 0) -> tuple[list[Decision], list[float]]:
    """One pass over the pool; returns every trajectory's decision and the loss of each step taken."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    order = random.Random(f"active-{seed}").sample(range(len(trajectories)), len(trajectories))
    opt = torch.optim.AdamW(heads.parameters(), lr=cfg.train.lr, weight_decay=0.0)
    decisions, losses = [], []
    for b in range(0, len(order), cfg.batch_size):
        idx = order[b:b + cfg.batch_size]
        unc = [trajectory_uncertainty(p, cfg.delta_pred, cfg.delta_std)
               for p in probabilities_each(heads, [inputs[i] for i in idx])]
        chosen = [i for i, u in zip(idx, unc) if u.selected or not cfg.select]
        answers = dict(zip(chosen, judge.first_errors([trajectories[i] for i in chosen]))) if chosen else {}
        usable = [i for i in chosen if answers[i] is not None]
        if usable:
            labels = [hard_labels(answers[i], len(trajectories[i].steps)) for i in usable]
            losses.append(_step(heads, opt, [inputs[i] for i in usable], labels, cfg.train, gen))
        decisions += [Decision(trajectories[i].response_id, b // cfg.batch_size, u, i in answers, answers.get(i))
                      for i, u in zip(idx, unc)]
    return decisions, losses


def train_on(heads: EnsembleHeads, inputs: list[torch.Tensor], labels: list[list[float]], cfg: ActiveConfig,
             seed: int = 0, steps: int | None = None) -> list[float]:
    """Fixed labelled trajectories in seeded batches: one pass, or exactly `steps` optimizer steps over as many
    reshuffled passes as that takes (a baseline matched to the active pass's steps)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(heads.parameters(), lr=cfg.train.lr, weight_decay=0.0)
    batches, rng = [], random.Random(f"subset-{seed}")
    while labels and (not batches if steps is None else len(batches) < steps):
        order = rng.sample(range(len(labels)), len(labels))
        batches += [order[b:b + cfg.batch_size] for b in range(0, len(order), cfg.batch_size)]
    batches = batches if steps is None else batches[:steps]
    return [_step(heads, opt, [inputs[i] for i in idx], [labels[i] for i in idx], cfg.train, gen) for idx in batches]
