"""ActPRM against its baselines on one pool, one seed (the pool-based claim, algorithms.md §3.5):

* **full data**: one pass with every trajectory labelled by the judge;
* **active**: one pass with selection, (δ_pred, δ_std) chosen on the **dev** split from a grid — the fewest
  labels whose dev F1 is within `dev_tolerance` of the full-data dev F1 — never on test;
* **random**: a seeded random subset of the pool of the active run's size, labelled and trained on in one pass.

Scoring is the caller's (`evaluate(heads) -> {"dev_f1", "f1", ...}`), so this layer stays beside evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from prm_core.active.judges import Trajectory, hard_labels
from prm_core.active.pool import ActiveConfig, Decision, active_pass, train_on
from prm_core.prm.ensemble import EnsembleConfig, EnsembleHeads, EnsembleTrainConfig


@dataclass(frozen=True)
class CompareConfig:
    heads: int = 16
    lr: float = 3e-3
    batch_size: int = 16
    reg_lambda: float = 0.5
    learning_probability: float = 1.0
    grid_pred: tuple[float, ...] = (0.75, 0.8, 0.85)
    grid_std: tuple[float, ...] = (0.03, 0.05, 0.1)
    dev_tolerance: float = 0.01

    def active(self, select: bool = True, delta_pred: float = 0.9, delta_std: float = 0.01) -> ActiveConfig:
        train = EnsembleTrainConfig(lr=self.lr, reg_lambda=self.reg_lambda, learning_probability=self.learning_probability)
        return ActiveConfig(delta_pred=delta_pred, delta_std=delta_std, batch_size=self.batch_size, select=select, train=train)


@dataclass
class SeedResult:
    seed: int
    delta_pred: float
    delta_std: float
    full: dict
    active: dict
    random: dict
    labels: int
    pool: int
    decisions: list[Decision]
    heads: EnsembleHeads  # the active run's


def new_heads(inputs: list[torch.Tensor], cfg: CompareConfig, seed: int) -> EnsembleHeads:
    torch.manual_seed(seed)
    heads = EnsembleHeads(EnsembleConfig(input_size=inputs[0].shape[1], num_heads=cfg.heads))
    heads.set_input_stats(inputs)
    return heads


def compare_seed(inputs: list[torch.Tensor], trajectories: list[Trajectory], make_judge: Callable[[], object],
                 evaluate: Callable[[EnsembleHeads], dict], cfg: CompareConfig, seed: int,
                 thresholds: tuple[float, float] | None = None) -> SeedResult:
    """Full data, active and random at the active run's budget, for one seed. The thresholds are chosen on dev
    here unless given (chosen once, on the first seed, and kept for the others)."""

    def run(select: bool, dp: float = 0.9, ds: float = 0.01):
        heads = new_heads(inputs, cfg, seed)
        decisions, _ = active_pass(heads, inputs, trajectories, make_judge(), cfg.active(select, dp, ds), seed)
        return heads, decisions, evaluate(heads)

    _, _, full = run(select=False)
    grid = [thresholds] if thresholds else [(dp, ds) for dp in cfg.grid_pred for ds in cfg.grid_std]
    tried = [(dp, ds, *run(True, dp, ds)) for dp, ds in grid]
    ok = [t for t in tried if t[4]["dev_f1"] >= full["dev_f1"] - cfg.dev_tolerance] or tried
    dp, ds, heads, decisions, active = min(ok, key=lambda t: (sum(d.labelled for d in t[3]), -t[4]["dev_f1"]))
    labelled = sum(d.labelled for d in decisions)
    subset = random.Random(f"random-{seed}").sample(range(len(trajectories)), labelled)
    judge = make_judge()
    answers = judge.first_errors([trajectories[i] for i in subset])
    kept = [(i, a) for i, a in zip(subset, answers) if a is not None]
    rnd_heads = new_heads(inputs, cfg, seed)
    train_on(rnd_heads, [inputs[i] for i, _ in kept], [hard_labels(a, len(trajectories[i].steps)) for i, a in kept],
             cfg.active(), seed)
    return SeedResult(seed, dp, ds, full, active, evaluate(rnd_heads), labelled, len(trajectories), decisions, heads)
