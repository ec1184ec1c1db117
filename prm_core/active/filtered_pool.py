"""ActPRM's one-shot setting (algorithms.md §3.5): the actively trained ensemble scores a large fresh trajectory pool,
keeps the uncertain part at its own thresholds, the judge labels only that, and a final ensemble trains on it as
the active one did.

Fresh problems come from their own seed range (`FRESH_POOL_SEED`), disjoint from the pool, training, eval and
benchmark problems. Scoring is the caller's (`score(frame, step_scores) -> {"f1", ...}`), as in `compare`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from prm_core.active.compare import CompareConfig, new_heads
from prm_core.active.judges import ExactJudge, hard_labels

if TYPE_CHECKING:  # torch loads where the experiment runs, not where its config is read (compare.py says why)
    from prm_core.active.features import Pool
    from prm_core.active.uncertainty import Uncertainty
    from prm_core.prm.ensemble import EnsembleHeads

FRESH_POOL_SEED = 50_000_000  # fresh problems: disjoint from the pool, training (10M+), eval (20M+), benchmark (30M+, 40M+)


@dataclass(frozen=True)
class FreshPool:
    problems: int = 250  # fresh problems; N responses each make the pool to filter
    samples: int = 8  # responses per fresh problem
    max_new_tokens: int = 192
    seed: int = 0


@dataclass
class FilteredPool:
    rollouts: pl.DataFrame  # the fresh pool's rollouts
    pool: Pool
    uncertainty: list[Uncertainty]  # the active ensemble's, per trajectory
    kept: list[int]  # the trajectories it selected (and the judge labelled)
    heads: EnsembleHeads  # the final PRM
    scores: dict  # its benchmark scores
    truth: list[int]  # the pool's true first errors (the audit only)

    def summary(self) -> dict:
        """The one-shot setting's numbers (`actprm.filtered_pool.<key>` in the run summary)."""
        n, kept = len(self.pool.trajectories), len(self.kept)
        return {"responses": n, "kept": kept, "kept_fraction": kept / max(1, n), "f1": self.scores["f1"],
                "kept_error_rate": sum(self.truth[i] >= 0 for i in self.kept) / max(1, kept),
                "pool_error_rate": sum(v >= 0 for v in self.truth) / max(1, len(self.truth)),
                "generated_tokens": int(self.rollouts["num_tokens"].sum())}


def filter_and_train(pool: Pool, active: EnsembleHeads, recorded: dict, domain, seed: int = 0
                     ) -> tuple[list[Uncertainty], list[int], EnsembleHeads]:
    """`active`'s uncertainty of every trajectory at its recorded thresholds, the trajectories it keeps, and the final
    ensemble trained (as the active one was: `recorded["train"]`) on the exact judge's labels of those alone."""
    from prm_core.active.pool import train_on
    from prm_core.active.uncertainty import select
    from prm_core.prm.ensemble import probabilities_each

    x, trajs = pool.inputs, pool.trajectories
    unc = select(probabilities_each(active, x), recorded["delta_pred"], recorded["delta_std"])
    kept = [i for i, u in enumerate(unc) if u.selected]
    answers = ExactJudge(domain).first_errors([trajs[i] for i in kept])
    labelled = [(i, a) for i, a in zip(kept, answers) if a is not None]
    cfg = CompareConfig(**recorded["train"])  # the final PRM trains as the active one did
    final = new_heads(x, cfg, seed)
    train_on(final, [x[i] for i, _ in labelled], [hard_labels(a, len(trajs[i].steps)) for i, a in labelled],
             cfg.active(), seed)
    return unc, kept, final


def filtered_pool(domain, engine, backbone, active: EnsembleHeads, recorded: dict, benchmark: pl.DataFrame,
                  score: Callable[[pl.DataFrame, list[list[float]]], dict], fresh: FreshPool = FreshPool(),
                  separator: str = "\n") -> FilteredPool:
    """Sample the fresh pool with `engine`, keep what `active` is unsure of at its recorded thresholds
    (`recorded`: delta_pred, delta_std and its training config under `train`), label that with the exact judge,
    train the final ensemble on it and score it on `benchmark`."""
    from prm_core.active.features import StepFeatures, pool_of
    from prm_core.prm.ensemble import step_scores
    from prm_core.domains.problems import problems_frame
    from prm_core.generation.rollouts import sample_rollouts
    from prm_core.generation.sampling import SamplingSpec

    problems = problems_frame(domain.problems(fresh.problems, FRESH_POOL_SEED + fresh.seed), "fresh")
    spec = SamplingSpec(n=fresh.samples, temperature=1.0, max_new_tokens=fresh.max_new_tokens, seed=fresh.seed)
    rollouts = sample_rollouts(domain, engine, problems, spec)
    features = StepFeatures.load(backbone, separator)
    pool = pool_of(features, domain, problems, rollouts)
    unc, kept, final = filter_and_train(pool, active, recorded, domain, fresh.seed)
    scores = score(benchmark, step_scores(final, features.of(benchmark)))
    truth = ExactJudge(domain).first_errors(pool.trajectories)
    return FilteredPool(rollouts, pool, unc, kept, final, scores, truth)
