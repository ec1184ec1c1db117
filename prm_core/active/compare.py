"""ActPRM against its baselines on one pool, per seed (the pool-based claim, algorithms.md §3.5):

* **active**: one pass with selection, (δ_pred, δ_std) chosen on the **dev** split from a grid — the fewest
  labels whose dev F1 is within `dev_tolerance` of the full-data dev F1 (none: the best dev F1) — never on test;
  it takes one optimizer step per batch the judge labelled something in;
* **random**: a seeded random subset of the pool of the active run's size, labelled by the same judge and trained
  for **as many optimizer steps** as the active pass took (reshuffled passes over the subset);
* **full data**: every trajectory labelled, trained for the active pass's optimizer steps too. Its one-pass run
  (one step per batch of the whole pool) is the dev reference the thresholds are chosen against, kept as
  `full_one_pass`.

So active and random differ only in which trajectories are labelled: labels, optimizer steps, batch size, heads,
init and seed are matched (`MATCHED`).

Over seeds (`compare_seeds`), the thresholds are chosen once, at seed 0, and kept; results are mean ± s.e.
`run_comparison` is the whole experiment on a pool of step inputs (`features`), with the audit of what was selected.
Scoring is the caller's (`evaluate(heads) -> {"dev_f1", "f1", ...}`, or `score(set, step_scores)`), so this layer
stays beside evaluation.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from prm_core.active.judges import Trajectory, hard_labels
from prm_core.runtime.stats import mean_se

if TYPE_CHECKING:  # torch and transformers load where an experiment runs, not where its config is read (Dagster's
    import torch  # code location: each `prm run` stage loads it twice)

    from prm_core.active.features import Pool, StepFeatures
    from prm_core.active.pool import ActiveConfig, Decision
    from prm_core.prm.ensemble import EnsembleHeads


TRAIN_KEYS = ("heads", "lr", "batch_size", "reg_lambda", "learning_probability")  # what a trained ensemble records
MATCHED = "random: judge labels, optimizer steps, batch size, heads, init, seed; full data: optimizer steps"


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
        from prm_core.active.pool import ActiveConfig
        from prm_core.prm.ensemble import EnsembleTrainConfig

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
    steps: int = 0  # the active pass's optimizer steps, which random and full data also take
    full_one_pass: dict | None = None  # full data in one pass (the thresholds' dev reference)


def new_heads(inputs: list[torch.Tensor], cfg: CompareConfig, seed: int) -> EnsembleHeads:
    import torch

    from prm_core.prm.ensemble import EnsembleConfig, EnsembleHeads

    torch.manual_seed(seed)
    heads = EnsembleHeads(EnsembleConfig(input_size=inputs[0].shape[1], num_heads=cfg.heads))
    heads.set_input_stats(inputs)
    return heads


def compare_seed(inputs: list[torch.Tensor], trajectories: list[Trajectory], make_judge: Callable[[], object],
                 evaluate: Callable[[EnsembleHeads], dict], cfg: CompareConfig, seed: int,
                 thresholds: tuple[float, float] | None = None) -> SeedResult:
    """Full data, active and random at the active run's budget, for one seed. The thresholds are chosen on dev
    here unless given (chosen once, on the first seed, and kept for the others)."""
    from prm_core.active.pool import active_pass, train_on

    def run(select: bool, dp: float = 0.9, ds: float = 0.01):
        heads = new_heads(inputs, cfg, seed)
        decisions, losses = active_pass(heads, inputs, trajectories, make_judge(), cfg.active(select, dp, ds), seed)
        return heads, decisions, evaluate(heads), len(losses)

    def matched(labelled: list[tuple[int, int]], steps: int) -> dict:
        heads = new_heads(inputs, cfg, seed)
        train_on(heads, [inputs[i] for i, _ in labelled], [hard_labels(a, len(trajectories[i].steps)) for i, a in labelled],
                 cfg.active(), seed, steps=steps)
        return evaluate(heads)

    _, full_decisions, full, _ = run(select=False)
    grid = [thresholds] if thresholds else [(dp, ds) for dp in cfg.grid_pred for ds in cfg.grid_std]
    tried = [(dp, ds, *run(True, dp, ds)) for dp, ds in grid]
    ok = [t for t in tried if t[4]["dev_f1"] >= full["dev_f1"] - cfg.dev_tolerance]
    if ok:  # the fewest labels that keep full data's dev F1
        dp, ds, heads, decisions, active, steps = min(ok, key=lambda t: (sum(d.labelled for d in t[3]), -t[4]["dev_f1"]))
    else:  # none keeps it: the best dev F1 (the fewest labels would be the grid's worst model)
        dp, ds, heads, decisions, active, steps = max(tried, key=lambda t: (t[4]["dev_f1"], -sum(d.labelled for d in t[3])))
    labelled = sum(d.labelled for d in decisions)
    subset = random.Random(f"random-{seed}").sample(range(len(trajectories)), labelled)
    answers = make_judge().first_errors([trajectories[i] for i in subset])
    rnd = matched([(i, a) for i, a in zip(subset, answers) if a is not None], steps)
    full_matched = matched([(i, d.judge_first_error) for i, d in enumerate(_by_pool_order(full_decisions, trajectories))
                            if d.judge_first_error is not None], steps)
    return SeedResult(seed, dp, ds, full_matched, active, rnd, labelled, len(trajectories), decisions, heads, steps, full)


def _by_pool_order(decisions: list[Decision], trajectories: list[Trajectory]) -> list[Decision]:
    """A pass's decisions (in its batch order) in the pool's order."""
    by_id = {d.response_id: d for d in decisions}
    return [by_id[t.response_id] for t in trajectories]


def compare_seeds(inputs: list[torch.Tensor], trajectories: list[Trajectory], make_judge: Callable[[], object],
                  evaluate: Callable[[EnsembleHeads], dict], cfg: CompareConfig, seeds: int,
                  on_seed: Callable[[SeedResult], None] = lambda r: None) -> list[SeedResult]:
    """`compare_seed` for seeds 0..seeds-1: the thresholds are chosen once, on dev, at seed 0 and kept for the others
    (its active heads are the ones released)."""
    results: list[SeedResult] = []
    for seed in range(seeds):
        chosen = (results[0].delta_pred, results[0].delta_std) if results else None
        results.append(compare_seed(inputs, trajectories, make_judge, evaluate, cfg, seed, chosen))
        on_seed(results[-1])
    return results


def error_rate(response_ids: list[str], truth: dict[str, int]) -> float:
    """How many of these trajectories really hold an error (their true first error ≥ 0); 0 for none."""
    return sum(truth[r] >= 0 for r in response_ids) / len(response_ids) if response_ids else 0.0


def selection_rows(decisions: list[Decision], truth: dict[str, int]) -> list[dict]:
    """What the active pass did with each trajectory, why, and its true first error (the audit only)."""
    return [{"response_id": d.response_id, "batch": d.batch, "selected": d.uncertainty.selected,
             "aleatoric": d.uncertainty.aleatoric, "epistemic": d.uncertainty.epistemic,
             "first_predicted_error": d.uncertainty.first_predicted_error, "max_std": d.uncertainty.max_std,
             "min_confidence": d.uncertainty.min_confidence, "labelled": d.labelled,
             "judge_first_error": d.judge_first_error, "true_first_error": truth[d.response_id]} for d in decisions]


def comparison_points(results: list[SeedResult]) -> list[dict]:
    """One point per (seed, method): the judge labels it used, its optimizer steps and its test F1 (full data, active,
    random)."""
    return [{"seed": r.seed, "method": m, "labels": n, "steps": r.steps, "f1": res["f1"]} for r in results
            for m, n, res in (("full data", r.pool, r.full), ("active", r.labels, r.active), ("random", r.labels, r.random))]


def comparison_summary(results: list[SeedResult], truth: dict[str, int], bon: float | None = None,
                       judge_tokens: int = 0) -> dict:
    """Active vs full data vs random over the seeds (mean ± s.e.), seed 0's thresholds, its best-of-N (`bon`), what the
    judges spent, and how often the labelled trajectories really hold an error against the pool's rate."""
    main = results[0]
    (f1, f1_se), (full_f1, _), (rnd_f1, rnd_se) = (mean_se([getattr(r, k)["f1"] for r in results])
                                                   for k in ("active", "full", "random"))
    gap, gap_se = mean_se([r.active["f1"] - r.random["f1"] for r in results])  # paired by seed
    labels = statistics.mean(r.labels for r in results)
    one_pass = [r.full_one_pass["f1"] for r in results if r.full_one_pass]
    return {"f1": f1, "f1_se": f1_se, "labels_used": labels, "label_fraction": labels / main.pool,
            "full_data_f1": full_f1, "random_f1": rnd_f1, "random_f1_se": rnd_se,
            "active_minus_random_f1": gap, "active_minus_random_f1_se": gap_se,
            "optimizer_steps": statistics.mean(r.steps for r in results), "matched": MATCHED,
            **({"full_data_one_pass_f1": statistics.mean(one_pass)} if one_pass else {}),
            **({"bon": bon} if bon is not None else {}), "judge_tokens": judge_tokens,
            "seeds": len(results), "delta_pred": main.delta_pred, "delta_std": main.delta_std,
            "selected_error_rate": error_rate([d.response_id for d in main.decisions if d.labelled], truth),
            "pool_error_rate": error_rate([d.response_id for d in main.decisions], truth)}


def judge_pass(inputs: list[torch.Tensor], trajectories: list[Trajectory], judge, evaluate: Callable[[EnsembleHeads], dict],
               cfg: CompareConfig, thresholds: tuple[float, float], seed: int = 0) -> dict:
    """One active pass with another judge at given thresholds (e.g. SCAN's MC labeller at seed 0's): its test F1, the
    labels it bought and the judge's cost."""
    from prm_core.active.pool import active_pass

    heads = new_heads(inputs, cfg, seed)
    decisions, _ = active_pass(heads, inputs, trajectories, judge, cfg.active(True, *thresholds), seed)
    return {"f1": evaluate(heads)["f1"], "labels": sum(d.labelled for d in decisions), **vars(judge.cost)}


@dataclass
class Comparison:
    """ActPRM against its baselines over seeds on one pool (`compare`), with seed 0's best-of-N and, when run, the
    active pass with another judge at seed 0's thresholds."""

    results: list[SeedResult]
    truth: dict[str, int]  # the pool's true first errors (exact judge): the audit only, never a label
    judge_tokens: int
    bon: dict | None = None  # seed 0's active heads on best-of-N
    other_judge: dict | None = None  # `judge_pass`

    @property
    def main(self) -> SeedResult:
        return self.results[0]

    def summary(self) -> dict:
        """The experiment's numbers (`actprm.<key>` in the run summary; the other judge's under `mc_judge.`)."""
        out = comparison_summary(self.results, self.truth, self.bon["prm_min"] if self.bon else None, self.judge_tokens)
        if self.other_judge is not None:
            o = self.other_judge
            out.update({"mc_judge.f1": o["f1"], "mc_judge.labels_used": o["labels"], "mc_judge.tokens": o["tokens"],
                        "mc_judge.dropped": o["dropped"]})
        return out


def run_comparison(pool: Pool, features: StepFeatures, dev_test: pl.DataFrame, score: Callable[[pl.DataFrame, list], dict],
                   domain, cfg: CompareConfig, seeds: int, bon: tuple[pl.DataFrame, Callable] | None = None,
                   other_judge: Callable[[], object] | None = None, on_seed: Callable[[SeedResult], None] = lambda r: None) -> Comparison:
    """The pool-based experiment: `compare_seeds` with the exact judge, every variant scored by `score` on the
    dev/test set `dev_test` (its step inputs from `features`); seed 0's active heads also on `bon` (a set and its
    scoring), and `judge_pass` with the judge `other_judge` makes (e.g. `judges.scan_judge`), when given."""
    from prm_core.active.judges import ExactJudge
    from prm_core.prm.ensemble import step_scores

    x_test = features.of(dev_test)
    x_bon = features.of(bon[0]) if bon else None
    judges = []

    def exact():
        judges.append(ExactJudge(domain))
        return judges[-1]

    def evaluate(heads):
        return score(dev_test, step_scores(heads, x_test))

    results = compare_seeds(pool.inputs, pool.trajectories, exact, evaluate, cfg, seeds, on_seed)
    main = results[0]
    bon_row = bon[1](bon[0], step_scores(main.heads, x_bon)) if bon else None
    truth = dict(zip((t.response_id for t in pool.trajectories), ExactJudge(domain).first_errors(pool.trajectories)))
    other = None
    if other_judge is not None:
        other = judge_pass(pool.inputs, pool.trajectories, other_judge(), evaluate, cfg, (main.delta_pred, main.delta_std))
    return Comparison(results, truth, sum(j.cost.tokens for j in judges), bon_row, other)
