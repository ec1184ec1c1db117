"""The MC annotation methods, from responses to one row per (response, step) with the method that valued it.

* `vanilla` (Math-Shepherd): every step of every response.
* `scan`: questions with SC ≥ threshold only; correct responses are positives with no rollouts; incorrect ones
  are valued sequentially with early stop at the first zero (algorithms.md §2.2-2.3).
* `scan_binary`: as `scan`, but the first zero is found by binary search over prefixes.

Both SCAN variants then value the d steps before their zero that they have not visited (`value_soft_window`), so
their soft labels follow one rule; d travels with the rows (`soft_window`) so the labels use the same d.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import polars as pl

from prm_core.domains.base import Domain
from prm_core.domains.problems import to_problems
from prm_core.generation.sampling import Engine, SamplingSpec
from prm_core.labels.first_error import (
    StepValues,
    search_binary,
    search_sequential,
    value_all_steps,
    value_soft_window,
)
from prm_core.labels.mc_value import Response, RolloutCost

METHODS = ("vanilla", "scan", "scan_binary")
SEARCH = {"vanilla": value_all_steps, "scan": search_sequential, "scan_binary": search_binary}

MC_SCHEMA = {
    "method": pl.String,
    "response_id": pl.String,
    "problem_id": pl.String,
    "shard": pl.String,
    "step": pl.Int32,
    "n_steps": pl.Int32,
    "mc_value": pl.Float64,  # c_t; null where the method did not value the step
    "rollouts": pl.Int32,
    "rollout_tokens": pl.Int64,
    "response_correct": pl.Boolean,
    "self_confidence": pl.Float64,
    "predicted_error": pl.Int32,  # t_e = first step with c_t == 0; -1 if none
    "soft_window": pl.Int32,  # d: SCAN's soft labels cover t_e-d..t_e, and those steps are valued
}


ROLLOUT_SPEC = SamplingSpec(temperature=0.7, top_p=0.8, max_new_tokens=192)  # SCAN's paper table (seed: per chunk)


@dataclass(frozen=True)
class AnnotationConfig:
    k: int = 8
    sc_threshold: float = 0.75
    d: int = 2  # SCAN's soft-label window (d = 2 in its code)
    scan_rollout_last: bool = True  # `scan` rolls out the last step as SCAN's code does; False: c_T = the grade


def responses_of(pool: pl.DataFrame, rollouts: pl.DataFrame) -> list[Response]:
    by_id = {p.problem_id: p for p in to_problems(pool)}
    return [
        Response(rid, by_id[pid], list(steps), bool(correct))
        for rid, pid, steps, correct in rollouts.select("response_id", "problem_id", "steps", "correct").iter_rows()
    ]


def annotate(
    method: str,
    domain: Domain,
    engine: Engine,
    responses: list[Response],
    sc: dict[str, float],
    cfg: AnnotationConfig,
    spec: SamplingSpec,
) -> tuple[pl.DataFrame, RolloutCost]:
    """Rows of `MC_SCHEMA` for the responses `method` covers, and what its rollouts cost."""
    if method not in SEARCH:
        raise ValueError(f"unknown MC method {method!r}; known: {', '.join(METHODS)}")
    if method == "vanilla":
        covered, to_search = responses, responses
    else:  # SCAN: confident questions only; rollouts only on their incorrect responses
        covered = [r for r in responses if sc[r.problem.problem_id] >= cfg.sc_threshold]
        to_search = [r for r in covered if not r.correct]
    search = SEARCH[method]
    if method == "scan":
        search = partial(search_sequential, rollout_last=cfg.scan_rollout_last)
    searched, cost = search(domain, engine, to_search, cfg.k, spec) if to_search else ([], RolloutCost())
    if method != "vanilla":
        searched, window_cost = value_soft_window(domain, engine, searched, cfg.k, spec, cfg.d)
        cost.add(window_cost)
    values = {sv.response.response_id: sv for sv in searched}
    rows = []
    for r in covered:
        sv = values.get(r.response_id) or StepValues(r, [None] * len(r.steps), -1)
        for t, v in enumerate(sv.values):
            n, tokens = cost.per_step.get((r.response_id, t), (0, 0))
            rows.append((method, r.response_id, r.problem.problem_id, "", t, len(r.steps), v, n, tokens, r.correct,
                         sc[r.problem.problem_id], sv.first_zero, cfg.d))
    return pl.DataFrame(rows, schema=MC_SCHEMA, orient="row"), cost
