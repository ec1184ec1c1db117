"""Exact step truth of every rollout: what every labelling method is audited against.

Per response: the local label and error kind of each step, `first_error` (0-based, -1 if none) and whether the
final answer is right. The prefix truth used to judge Monte Carlo values is "every step up to k is correct",
i.e. `k < first_error` or `first_error == -1` (testbed-probe.md §8.6).
"""

from __future__ import annotations

import polars as pl

from prm_core.domains.base import ExactDomain
from prm_core.domains.problems import to_problems

STEP_TRUTH_SCHEMA = {
    "response_id": pl.String,
    "problem_id": pl.String,
    "shard": pl.String,
    "n_steps": pl.Int32,
    "step_labels": pl.List(pl.Boolean),
    "step_kinds": pl.List(pl.String),
    "first_error": pl.Int32,
    "first_error_kind": pl.String,
    "final_correct": pl.Boolean,
}


def label_rollouts(domain: ExactDomain, pool: pl.DataFrame, rollouts: pl.DataFrame) -> pl.DataFrame:
    """Exact labels for every response in `rollouts` (its problems must be in `pool`)."""
    by_id = {p.problem_id: p for p in to_problems(pool)}
    rows = []
    for r in rollouts.select("response_id", "problem_id", "shard", "response").iter_rows():
        rid, pid, shard, text = r
        problem = by_id.get(pid)
        if problem is None:
            raise KeyError(f"rollout {rid!r} refers to problem {pid!r}, which is not in the pool")
        v = domain.label_steps(problem, text)
        rows.append((rid, pid, shard, len(v.labels), v.labels, v.kinds, v.first_error, v.first_error_kind, v.final_correct))
    return pl.DataFrame(rows, schema=STEP_TRUTH_SCHEMA, orient="row")


def prefix_correct(first_error: int, step: int) -> bool:
    """Truth of the prefix ending at `step`: every step up to it is correct."""
    return first_error == -1 or step < first_error


def explode_steps(truth: pl.DataFrame) -> pl.DataFrame:
    """One row per (response, step) with the local label and the prefix truth."""
    return (
        truth.select("response_id", "problem_id", "first_error", "step_labels", "step_kinds")
        .with_columns(step=pl.int_ranges(0, pl.col("step_labels").list.len()))
        .explode("step_labels", "step_kinds", "step")
        .rename({"step_labels": "step_correct", "step_kinds": "kind"})
        .with_columns(prefix_correct=(pl.col("first_error") == -1) | (pl.col("step") < pl.col("first_error")))
    )


def first_error_counts(truth: pl.DataFrame) -> pl.DataFrame:
    """How many responses have their first error at each position, and of which kind."""
    return (
        truth.group_by("first_error", "first_error_kind")
        .len("responses")
        .sort("first_error", "first_error_kind")
    )
