"""Self-confidence of the annotator policy on a question (SCAN, algorithms.md §2.2).

    SC_π(q) = (1/N) · Σ_{j=1..N} J(r_j, a),   r_j ~ π(·|q)

Answer-less responses count as wrong and the denominator is the requested N, as in SCAN's code.
"""

from __future__ import annotations

import polars as pl

from prm_core.domains.base import Domain
from prm_core.domains.problems import to_problems
from prm_core.generation.sampling import Engine, SamplingSpec

SC_SCHEMA = {
    "problem_id": pl.String,
    "shard": pl.String,
    "n_samples": pl.Int32,
    "n_correct": pl.Int32,
    "self_confidence": pl.Float64,
    "tokens": pl.Int64,
}

# the preliminary study's buckets (testbed-probe.md §4): low ≤ 2/8, mid, high ≥ 6/8
BUCKETS = (("low", 0.0, 0.25), ("mid", 0.25, 0.75), ("high", 0.75, 1.01))


def self_confidence(domain: Domain, engine: Engine, pool: pl.DataFrame, spec: SamplingSpec) -> pl.DataFrame:
    """SC of every problem in `pool` from `spec.n` fresh samples."""
    problems = to_problems(pool)
    samples = engine.generate([domain.prompt(p) for p in problems], spec)
    rows = []
    for problem, shard, row in zip(problems, pool["shard"].to_list(), samples):
        correct = sum(domain.grade(domain.extract_answer(s.text), problem.answer) for s in row)
        rows.append((problem.problem_id, shard, spec.n, correct, correct / spec.n, sum(s.num_tokens for s in row)))
    return pl.DataFrame(rows, schema=SC_SCHEMA, orient="row")


def sc_bucket(expr: pl.Expr) -> pl.Expr:
    """The self-confidence bucket (`low`/`mid`/`high`) of an SC column."""
    out = pl.lit(None, dtype=pl.String)
    for name, lo, hi in reversed(BUCKETS):
        out = pl.when((expr >= lo) & (expr < hi)).then(pl.lit(name)).otherwise(out)
    return out

