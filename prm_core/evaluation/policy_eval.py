"""How good the policy is: held-out final-answer accuracy at temperature 1 and greedy, and where it errs.

The testbed's policy must be imperfect on purpose (45-80 % sampled accuracy, mistakes mostly inside
solutions: testbed-probe.md §2); this measures it on problems disjoint from training and from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from prm_core.domains.base import ExactDomain
from prm_core.domains.problems import problems_frame
from prm_core.generation.rollouts import sample_rollouts
from prm_core.generation.sampling import SamplingSpec
from prm_core.labels.step_truth import label_rollouts

EVAL_SEED = 20_000_000  # held-out problems: disjoint from training (10M+) and pool (< 10M) seeds


@dataclass
class PolicyEval:
    accuracy: float
    greedy_accuracy: float
    by_steps: list[dict]
    first_error_kinds: list[dict]
    mid_solution_error_share: float
    generated_tokens: int
    max_tokens: int
    truncated: int
    samples: object  # pl.DataFrame of the sampled eval responses with their truth


def evaluate_policy(domain: ExactDomain, engine, n_problems: int, seed: int, max_new_tokens: int = 192) -> PolicyEval:
    """Held-out final-answer accuracy at temperature 1 (and greedy), with where and how the policy errs."""
    pool = problems_frame(domain.problems(n_problems, EVAL_SEED + seed), "eval")
    sampled = sample_rollouts(domain, engine, pool, SamplingSpec(n=1, temperature=1.0, max_new_tokens=max_new_tokens, seed=seed))
    greedy = sample_rollouts(domain, engine, pool, SamplingSpec(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed))
    truth = label_rollouts(domain, pool, sampled)
    joined = sampled.join(truth.select("response_id", "first_error", "first_error_kind"), on="response_id").join(
        pool.select("problem_id", pl.col("n_steps").alias("ref_steps")), on="problem_id"
    )
    wrong = joined.filter(pl.col("first_error") >= 0)
    # a first error strictly inside the solution: not at step 0 and not at the answer line
    mid = wrong.filter((pl.col("first_error") > 0) & (pl.col("first_error") < pl.col("ref_steps")))
    return PolicyEval(
        accuracy=float(sampled["correct"].mean()),
        greedy_accuracy=float(greedy["correct"].mean()),
        by_steps=joined.group_by("ref_steps").agg(problems=pl.len(), accuracy=pl.col("correct").mean()).sort("ref_steps").to_dicts(),
        first_error_kinds=wrong.group_by("first_error_kind").len("responses").sort("responses", descending=True).to_dicts(),
        mid_solution_error_share=mid.height / wrong.height if wrong.height else 0.0,
        generated_tokens=int(sampled["num_tokens"].sum() + greedy["num_tokens"].sum()),
        max_tokens=int(max(sampled["num_tokens"].max(), greedy["num_tokens"].max())),
        truncated=int((sampled["finish_reason"] == "length").sum()),
        samples=joined,
    )
