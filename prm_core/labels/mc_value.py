"""Monte Carlo value of a step prefix (Math-Shepherd, algorithms.md §1.3; SCAN §2.2).

    c_t = (1/K) · Σ_{k=1..K} J(y_k, a),   y_k ~ π(· | prompt(q) + sep.join(x_1..x_t) + sep)

A completion is judged on the prefix plus the completion, so an answer already in the prefix counts. The last
step of a response holds its final answer, so its value is the response's own grade, with no rollouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from prm_core.domains.base import Domain, Problem, join_steps
from prm_core.generation.sampling import Engine, SamplingSpec


@dataclass(frozen=True)
class Response:
    """A graded response to be valued step by step."""

    response_id: str
    problem: Problem
    steps: list[str]
    correct: bool

    @property
    def last(self) -> int:
        return len(self.steps) - 1


@dataclass
class RolloutCost:
    rollouts: int = 0
    tokens: int = 0
    seconds: float = 0.0
    grade_timeouts: int = 0  # rollouts whose grading timed out (graded wrong; counted so they are seen)
    per_step: dict = field(default_factory=dict)  # (response_id, step) -> (rollouts, tokens)

    def add(self, other: "RolloutCost") -> None:
        self.rollouts += other.rollouts
        self.tokens += other.tokens
        self.seconds += other.seconds
        self.grade_timeouts += other.grade_timeouts
        self.per_step.update(other.per_step)


def prefix_text(domain: Domain, steps: list[str], t: int) -> str:
    """The response text up to and including step t, with the separator that starts the next step."""
    return join_steps(domain, steps[: t + 1]) + domain.step_separator


def mc_values(
    domain: Domain, engine: Engine, queries: list[tuple[Response, int]], k: int, spec: SamplingSpec,
    rollout_last: bool = False,
) -> tuple[list[float], RolloutCost]:
    """c_t for every (response, t) query, all rolled out in one batched call (shared prefixes are cached).

    The last step's value is the response's own grade, c_T = J(x, a), unless `rollout_last`: then it is rolled out
    like the others (SCAN's code: completions after the whole response, graded on their last answer), except for a
    one-step response (SCAN gives it t_e = 0 without rollouts)."""
    cost = RolloutCost()
    values: list[float | None] = [None] * len(queries)
    to_roll = []
    for i, (r, t) in enumerate(queries):
        if t == r.last and not (rollout_last and t > 0):
            values[i] = float(r.correct)  # the final answer is already written: c_T = J(x, a)
        else:
            to_roll.append(i)
    if to_roll:
        start = time.perf_counter()
        prefixes = [prefix_text(domain, queries[i][0].steps, queries[i][1]) for i in to_roll]
        prompts = [domain.prompt(queries[i][0].problem) + p for i, p in zip(to_roll, prefixes)]
        samples = engine.generate(prompts, replace(spec, n=k))
        for i, prefix, row in zip(to_roll, prefixes, samples):
            r, t = queries[i]
            outcomes = [domain.grade_outcome(domain.extract_answer(prefix + s.text), r.problem.answer) for s in row]
            values[i] = outcomes.count("correct") / k
            cost.grade_timeouts += outcomes.count("timeout")
            tokens = sum(s.num_tokens for s in row)
            cost.rollouts += k
            cost.tokens += tokens
            cost.per_step[(r.response_id, t)] = (k, tokens)
        cost.seconds = time.perf_counter() - start
    return values, cost  # type: ignore[return-value]
