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
    "grade": pl.String,  # the grader's outcome: correct, wrong, no_answer or timeout (domains.base.GradeOutcome)
    "num_tokens": pl.Int32,
    "finish_reason": pl.String,
}


SKIPPED_SCHEMA = {"problem_id": pl.String, "shard": pl.String, "prompt_tokens": pl.Int64, "reason": pl.String}


def fit_to_context(domain: Domain, engine: Engine, pool: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the problems of `pool` whose prompt leaves the engine room to generate, the others with a reason): a prompt
    as long as the engine's context would fail the whole generate call (vLLM refuses the batch)."""
    limit = engine.context_len
    lengths = [len(engine.tokenizer(domain.prompt(p))["input_ids"]) for p in to_problems(pool)]
    fits = pl.Series([n < limit for n in lengths], dtype=pl.Boolean)
    skipped = pool.filter(~fits).select("problem_id", "shard").with_columns(
        prompt_tokens=pl.Series([n for n in lengths if n >= limit], dtype=pl.Int64),
        reason=pl.lit(f"prompt does not fit the engine's context of {limit} tokens (max_model_len)"))
    return pool.filter(fits), skipped.select(list(SKIPPED_SCHEMA)).cast(SKIPPED_SCHEMA)


def response_id(problem_id: str, sample_index: int) -> str:
    return f"{problem_id}/r{sample_index}"


def sample_rollouts(domain: Domain, engine: Engine, pool: pl.DataFrame, spec: SamplingSpec) -> pl.DataFrame:
    """`spec.n` graded responses for every problem of `pool`, one row each."""
    problems = to_problems(pool)
    shards = pool["shard"].to_list()
    samples = engine.generate([domain.prompt(p) for p in problems], spec) if problems else []
    rows = []
    for problem, shard, row in zip(problems, shards, samples):
        for j, s in enumerate(row):
            predicted = domain.extract_answer(s.text)
            steps = domain.split_steps(s.text)
            outcome = domain.grade_outcome(predicted, problem.answer)
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
                    outcome == "correct",
                    outcome,
                    s.num_tokens,
                    s.finish_reason,
                )
            )
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA, orient="row")


def accuracy(rollouts: pl.DataFrame) -> float | None:
    """The share of correct responses; None when there are none (an empty shard has no accuracy)."""
    return float(rollouts["correct"].mean()) if rollouts.height else None
