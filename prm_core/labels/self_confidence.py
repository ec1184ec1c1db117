"""Self-confidence of the annotator policy on a question (SCAN, algorithms.md §2.2, §2.3 step 4).

    SC_π(q) = (1/N) · Σ_{j=1..N} J(r_j, a),   r_j ~ π(·|q)

SCAN computes it from the very N responses it then labels (`generation_accuracy`), so it costs no generation:
`self_confidence(rollouts, n)`. `fresh_self_confidence` samples N new responses per question instead (a documented
option; its tokens are then part of SCAN's cost). Answer-less responses count as wrong and the denominator is the
requested N, as in SCAN's code.
"""

from __future__ import annotations

import polars as pl

from prm_core.domains.base import Domain
from prm_core.generation.rollouts import fit_to_context, sample_rollouts
from prm_core.generation.sampling import Engine, SamplingSpec

SC_SCHEMA = {
    "problem_id": pl.String,
    "shard": pl.String,
    "n_samples": pl.Int32,
    "n_correct": pl.Int32,
    "self_confidence": pl.Float64,
    "tokens": pl.Int64,  # tokens generated for SC alone: 0 when it comes from the responses being labelled
}

# the preliminary study's buckets (testbed-probe.md §4): low ≤ 2/8, mid, high ≥ 6/8
BUCKETS = (("low", 0.0, 0.25), ("mid", 0.25, 0.75), ("high", 0.75, 1.01))


def self_confidence(responses: pl.DataFrame, n: int, *, generated_for_sc: bool = False) -> pl.DataFrame:
    """SC of every problem of a graded `rollouts` frame, over the requested `n` responses per problem.

    `generated_for_sc` says whether these responses were sampled for SC alone (their tokens are then SC's cost).
    """
    if n < 1:
        raise ValueError(f"self-confidence needs n >= 1 responses per problem, got {n}")
    tokens = pl.col("num_tokens").sum().cast(pl.Int64) if generated_for_sc else pl.lit(0, dtype=pl.Int64)
    per = responses.group_by("problem_id", maintain_order=True).agg(
        pl.first("shard"), n_correct=pl.col("correct").sum().cast(pl.Int32), tokens=tokens, rows=pl.len())
    too_many = per.filter(pl.col("rows") > n)
    if too_many.height:
        raise ValueError(f"self-confidence over n={n}: problem {too_many['problem_id'][0]!r} has "
                         f"{too_many['rows'][0]} responses")
    return (
        per.with_columns(n_samples=pl.lit(n, dtype=pl.Int32), self_confidence=pl.col("n_correct") / n)  # Σ J(r_j, a) / N
        .select(list(SC_SCHEMA))
        .cast(SC_SCHEMA)
    )


def fresh_self_confidence(domain: Domain, engine: Engine, pool: pl.DataFrame, spec: SamplingSpec) -> pl.DataFrame:
    """SC from `spec.n` fresh samples per problem of `pool` (not SCAN's default: they cost tokens of their own);
    a problem too long for the engine's context has no SC (`rollouts` lists it as skipped)."""
    fits, _ = fit_to_context(domain, engine, pool)
    return self_confidence(sample_rollouts(domain, engine, fits, spec), spec.n, generated_for_sc=True)


def sc_bucket(expr: pl.Expr) -> pl.Expr:
    """The self-confidence bucket (`low`/`mid`/`high`) of an SC column."""
    out = pl.lit(None, dtype=pl.String)
    for name, lo, hi in reversed(BUCKETS):
        out = pl.when((expr >= lo) & (expr < hi)).then(pl.lit(name)).otherwise(out)
    return out
