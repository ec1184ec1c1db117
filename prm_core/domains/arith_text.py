"""The arith testbed as real data: its problems written as GSM8K-style JSONL, and the text format a policy learns to
solve them through the real-data path (`--domain gsm8k --policy DIR`, graded by math-verify).

A row is GSM8K's: `question`, and an `answer` whose reasoning lines end with `#### N`:

    {"id": "arith-7-000000", "question": "Tom has 17 pens. He triples his pens. How many now?",
     "answer": "triples his pens: 17 * 3 = 51\\n#### 51"}

`ArithAsText` is what a tiny policy trains on to answer them as the text path asks: `TextMathDomain`'s prompt, steps
separated by blank lines, the final answer in `\\boxed{}`. It has no exact step labeller: the text path has none.
"""

from __future__ import annotations

import json
from typing import Iterator

from prm_core.domains.arith import ArithConfig, ArithDomain
from prm_core.domains.base import Problem
from prm_core.domains.textmath import TextMathDomain
from prm_core.lineage.storage import write_text


class ArithAsText:
    """Arith problems with the text path's prompt and a reference solution in its format (what `train_policy` needs)."""

    name = "arith-text"
    step_separator = TextMathDomain.step_separator

    def __init__(self, config: ArithConfig | None = None):
        self.arith = ArithDomain(config)
        self.text = TextMathDomain(name="gsm8k")

    def problems(self, n: int, seed: int) -> Iterator[Problem]:
        return self.arith.problems(n, seed)

    def prompt(self, problem: Problem) -> str:
        return self.text.prompt(problem)

    def reference_solution(self, problem: Problem) -> str:
        steps = self.arith.reference_steps(problem)
        return self.step_separator.join([s.line() for s in steps] + [f"The answer is \\boxed{{{steps[-1].result}}}."])


def gsm8k_row(domain: ArithDomain, problem: Problem) -> dict:
    """One problem as a GSM8K row: the reference steps, one a line, then `#### N`."""
    lines = [s.line() for s in domain.reference_steps(problem)]
    return {"id": problem.problem_id, "question": problem.question, "answer": "\n".join([*lines, f"#### {problem.answer}"])}


def write_gsm8k_jsonl(path, n: int, seed: int, config: ArithConfig | None = None):
    """`n` arith problems of seed `seed` as a GSM8K-style JSONL file at `path` (a shard of a `--source` folder)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    domain = ArithDomain(config)
    rows = (json.dumps(gsm8k_row(domain, p)) for p in domain.problems(n, seed))
    return write_text("\n".join(rows) + "\n", path)
