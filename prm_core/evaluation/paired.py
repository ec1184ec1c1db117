"""Telling PRMs apart on the same benchmark rows (issue 29: resolution).

PRMs scored on the same best-of-N candidates are compared **paired**: per problem the difference of their hits
d_i = hit_A,i − hit_B,i, its mean and s.e. = sd(d)/√n, far smaller than either accuracy's binomial s.e. when both
often pick the same candidate. F1 has no per-row form, so its s.e. is a bootstrap over the test rows at the
dev-chosen τ (held fixed: the predictions are fixed), and two PRMs' F1s are differenced on the same draws.
A difference is *separable* beyond 2 s.e. (`runtime.stats.separable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import polars as pl

from prm_core.evaluation.benchmark_scores import candidates
from prm_core.evaluation.best_of_n import select
from prm_core.evaluation.processbench import f1_score
from prm_core.runtime.stats import bootstrap_draws, bootstrap_se, paired_difference, separable


PAIRED_SCHEMA = {"a": pl.String, "b": pl.String, "problems": pl.Int64, "bon_diff": pl.Float64, "bon_diff_se": pl.Float64,
                 "bon_separable": pl.Boolean, "f1_diff": pl.Float64, "f1_diff_se": pl.Float64, "f1_separable": pl.Boolean}


def bon_hits(bon: pl.DataFrame, method: str = "prm_min") -> list[float]:
    """1.0 where `method` picks a correct candidate, per problem, from a PRM's per-sample best-of-N frame
    (`step_scores` beside the candidates)."""
    return [float(select(c, method)) for c in candidates(bon, bon["step_scores"].to_list()) if c]


def predictions_on_test(processbench: pl.DataFrame) -> tuple[list[int], list[int]]:
    """The test rows' predicted first errors (at the PRM's dev τ) and labels, from its per-sample frame."""
    test = processbench.filter(pl.col("split") == "test")
    return test["prediction"].to_list(), test["label"].to_list()


def f1_draws(predictions: Sequence[int], labels: Sequence[int], draws: list[list[int]]) -> list[float]:
    """ProcessBench F1 of fixed predictions on each bootstrap draw of the rows."""
    return [f1_score([predictions[i] for i in idx], [labels[i] for i in idx]).f1 for idx in draws]


def paired_comparisons(samples: dict[str, dict[str, pl.DataFrame]], resamples: int = 1000, seed: int = 0
                       ) -> tuple[list[dict], dict[str, float]]:
    """Every pair of PRMs with per-sample best-of-N frames (`samples[prm]["bon"]`, the same candidates for all), in
    the order given: the best-of-N (min) difference ± paired s.e., and where both have ProcessBench-style frames, the
    F1 difference ± bootstrap s.e. on shared draws; each with whether it is separable. Also each PRM's F1
    bootstrap s.e."""
    hits = {p: bon_hits(s["bon"]) for p, s in samples.items() if "bon" in s}
    pb = {p: predictions_on_test(s["processbench"]) for p, s in samples.items() if "processbench" in s}
    n = {len(labels) for _, labels in pb.values()}
    if len(n) > 1:
        raise ValueError(f"the PRMs' ProcessBench-style test rows differ in number: {sorted(n)}")
    draws = bootstrap_draws(n.pop(), resamples, seed) if pb else []
    f1 = {p: (f1_score(pred, labels).f1, f1_draws(pred, labels, draws)) for p, (pred, labels) in pb.items()}
    rows = []
    for a, b in combinations(hits, 2):
        diff, se = paired_difference(hits[a], hits[b])
        row = {"a": a, "b": b, "problems": len(hits[a]), "bon_diff": diff, "bon_diff_se": se,
               "bon_separable": separable(diff, se), "f1_diff": None, "f1_diff_se": None, "f1_separable": None}
        if a in f1 and b in f1:
            f1_se = bootstrap_se([x - y for x, y in zip(f1[a][1], f1[b][1])])
            row.update(f1_diff=f1[a][0] - f1[b][0], f1_diff_se=f1_se, f1_separable=separable(f1[a][0] - f1[b][0], f1_se))
        rows.append(row)
    return rows, {p: bootstrap_se(d) for p, (_, d) in f1.items()}
