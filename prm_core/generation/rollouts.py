"""Rollouts: N sampled responses per problem, split into steps and graded by the domain."""

from __future__ import annotations

import polars as pl

from prm_core.domains.base import Domain
from prm_core.domains.problems import to_problems
from prm_core.generation.sampling import Engine, SamplingSpec

ROLLOUT_SCHEMA = {
    "response_id": pl.String,
    "problem_id": pl.String,
    "shard": pl.String,
    "sample_index": pl.Int32,
    "response": pl.String,
    "steps": pl.List(pl.String),
    "n_steps": pl.Int32,
    "predicted_answer": pl.String,
    "correct": pl.Boolean,
    "num_tokens": pl.Int32,
    "finish_reason": pl.String,
}


def response_id(problem_id: str, sample_index: int) -> str:
    return f"{problem_id}/r{sample_index}"


def sample_rollouts(domain: Domain, engine: Engine, pool: pl.DataFrame, spec: SamplingSpec) -> pl.DataFrame:
    """`spec.n` graded responses for every problem of `pool`, one row each."""
    problems = to_problems(pool)
    shards = pool["shard"].to_list()
    samples = engine.generate([domain.prompt(p) for p in problems], spec)
    rows = []
    for problem, shard, row in zip(problems, shards, samples):
        for j, s in enumerate(row):
            predicted = domain.extract_answer(s.text)
            steps = domain.split_steps(s.text)
            rows.append(
                (
                    response_id(problem.problem_id, j),
                    problem.problem_id,
                    shard,
                    j,
                    s.text,
                    steps,
                    len(steps),
                    predicted,
                    domain.grade(predicted, problem.answer),
                    s.num_tokens,
                    s.finish_reason,
                )
            )
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA, orient="row")


def accuracy(rollouts: pl.DataFrame) -> float:
    return float(rollouts["correct"].mean()) if rollouts.height else 0.0
