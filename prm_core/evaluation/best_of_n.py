"""Best-of-N selection with a PRM and its baselines (algorithms.md §1.4, SCAN's `vote.py` vocabulary).

| name         | response score        | selection                                              |
| prm_min      | min of step scores    | argmax response                                        |
| prm_last     | last step score       | argmax response                                        |
| prm_min_vote | min of step scores    | sum scores of responses sharing an answer; best answer |
| majority     | —                     | most frequent answer                                   |
| pass_at_n    | —                     | correct if any of the N is correct (oracle)            |

An empty score list counts as -1; ties go to the first response in generation order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    answer: str | None
    correct: bool
    step_scores: tuple[float, ...]


def response_score(scores: Sequence[float], how: str) -> float:
    if not scores:
        return -1.0
    return min(scores) if how == "min" else scores[-1]


def pick_argmax(cands: Sequence[Candidate], how: str) -> Candidate:
    best = max(range(len(cands)), key=lambda i: (response_score(cands[i].step_scores, how), -i))
    return cands[best]


def pick_vote(cands: Sequence[Candidate], weights: Sequence[float]) -> Candidate:
    """The first candidate carrying the answer with the largest total weight (answer-less ones never win)."""
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, (c, w) in enumerate(zip(cands, weights)):
        if c.answer is None:
            continue
        totals[c.answer] = totals.get(c.answer, 0.0) + w
        first.setdefault(c.answer, i)
    if not totals:
        return cands[0]
    answer = max(totals, key=lambda a: (totals[a], -first[a]))
    return cands[first[answer]]


def select(cands: Sequence[Candidate], method: str) -> bool:
    """Whether `method` picks a correct candidate."""
    if method == "pass_at_n":
        return any(c.correct for c in cands)
    if method == "majority":
        return pick_vote(cands, [1.0] * len(cands)).correct
    if method == "prm_min":
        return pick_argmax(cands, "min").correct
    if method == "prm_last":
        return pick_argmax(cands, "last").correct
    if method == "prm_min_vote":
        return pick_vote(cands, [response_score(c.step_scores, "min") for c in cands]).correct
    if method == "first":
        return cands[0].correct
    raise ValueError(f"unknown best-of-N method {method!r}")


@dataclass(frozen=True)
class BoNResult:
    accuracy: float
    stderr: float
    n_problems: int


def best_of_n(problems: Sequence[Sequence[Candidate]], method: str) -> BoNResult:
    """Accuracy of `method` over problems, with its binomial standard error."""
    hits = [select(c, method) for c in problems if c]
    n = len(hits)
    acc = sum(hits) / n if n else 0.0
    return BoNResult(acc, math.sqrt(acc * (1 - acc) / n) if n else 0.0, n)
