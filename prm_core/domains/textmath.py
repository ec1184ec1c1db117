"""Real math data sets (GSM8K, MATH, any question/answer file): graded with math-verify, no exact step labeller.

Responses are split into steps on blank lines (SCAN's convention, algorithms.md §2.8); the final answer is the
last `\\boxed{...}`, else the text after "answer is", else GSM8K's `#### N`.
"""

from __future__ import annotations

import re
from typing import Iterator

from prm_core.domains.base import Problem

PROMPT = (
    "Solve the problem step by step. Separate steps with a blank line and put the final answer in "
    "\\boxed{{}}.\n\nProblem: {question}\n\nSolution:\n"
)
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+)", re.I)
_HASHES = re.compile(r"####\s*([^\n]+)")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (nested braces allowed)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


class TextMathDomain:
    """GSM8K / MATH style problems; `grade` uses math-verify."""

    step_separator = "\n\n"

    def __init__(self, name: str = "text", rows: list[Problem] | None = None, timeout_s: int = 5):
        self.name = name
        self.rows = rows or []
        self.timeout_s = timeout_s

    def problems(self, n: int, seed: int) -> Iterator[Problem]:
        import random

        rows = list(self.rows)
        random.Random(seed).shuffle(rows)
        yield from rows[:n]

    def prompt(self, problem: Problem) -> str:
        return PROMPT.format(question=problem.question)

    def split_steps(self, response: str) -> list[str]:
        steps = [s.strip() for s in response.split(self.step_separator) if s.strip()]
        return steps or [""]

    def extract_answer(self, response: str) -> str | None:
        for found in (last_boxed(response), *(m[-1] for m in (_ANSWER_IS.findall(response), _HASHES.findall(response)) if m)):
            if found:
                return found.strip().rstrip(".")
        return None

    def grade(self, predicted: str | None, gold: str) -> bool:
        """math-verify equivalence of the extracted answer and the gold answer; errors and timeouts are wrong."""
        if predicted is None:
            return False
        from math_verify import parse, verify

        try:
            gold_parsed = parse(f"${gold}$", parsing_timeout=self.timeout_s)
            pred_parsed = parse(f"${predicted}$", parsing_timeout=self.timeout_s)
            return bool(verify(gold_parsed, pred_parsed, timeout_seconds=self.timeout_s))
        except Exception:
            return False
