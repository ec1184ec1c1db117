"""The domain interface: everything the pipeline needs to know about one kind of math problem.

A domain supplies problems, formats prompts, splits a response into steps, extracts and grades the final
answer, and — when it can — labels every step exactly. The arith testbed implements all of it; real data
sets (GSM8K, MATH) implement all but the exact step labeller and grade with math-verify.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol, get_args, runtime_checkable

GradeOutcome = Literal["correct", "wrong", "no_answer", "timeout"]
GRADE_OUTCOMES: tuple[GradeOutcome, ...] = get_args(GradeOutcome)
_INTEGER = re.compile(r"\s*([+-]?)(\d+)\s*")


@dataclass(frozen=True)
class Problem:
    """One problem of a pool. `answer` is the gold final answer as a string."""

    problem_id: str
    question: str
    answer: str
    source: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StepVerdict:
    """Exact per-step truth for one response (`first_error` is 0-based, -1 if every step is correct)."""

    labels: list[bool]
    kinds: list[str]  # "ok" or the error kind of each step
    first_error: int
    final_correct: bool

    @property
    def first_error_kind(self) -> str:
        return "ok" if self.first_error < 0 else self.kinds[self.first_error]


@runtime_checkable
class Domain(Protocol):
    """Implementations subclass it explicitly, so that `grade` is the one derived from their `grade_outcome`."""

    name: str
    step_separator: str

    def problems(self, n: int, seed: int) -> Iterator[Problem]:
        """A seeded stream of problems (a generator, or the rows of a data set)."""
        ...

    def prompt(self, problem: Problem) -> str:
        """The text the policy continues; step prefixes are appended to it verbatim."""
        ...

    def split_steps(self, response: str) -> list[str]:
        """A response's steps, in order; never empty (an empty response is one empty step)."""
        ...

    def extract_answer(self, response: str) -> str | None:
        """The final answer written in a response, or None when it has none."""
        ...

    def grade_outcome(self, predicted: str | None, gold: str) -> GradeOutcome:
        """How an extracted answer compares with the gold answer: correct, wrong, no_answer (None or blank) or
        timeout (the verifier ran out of time)."""
        ...

    def grade(self, predicted: str | None, gold: str) -> bool:
        """Whether an extracted answer equals the gold answer (no answer and a timeout are wrong)."""
        return self.grade_outcome(predicted, gold) == "correct"


@runtime_checkable
class ExactDomain(Domain, Protocol):
    """A domain whose every step can be checked exactly (the arith testbed)."""

    def label_steps(self, problem: Problem, response: str) -> StepVerdict:
        """Exact per-step labels of any text; never raises."""
        ...

    def reference_solution(self, problem: Problem) -> str:
        """A correct solution in the policy's format (one step per line, then the answer line)."""
        ...


def canonical_int(text: str) -> str | None:
    """`text` as a canonical integer string (no sign for 0, no leading zeros), or None if it is not an integer.

    Integers are compared as these strings, never through int(): exact at any size, and Python's 4,300-digit
    int/str conversion limit (a process-wide setting, not safe to lift per call) never applies."""
    found = _INTEGER.fullmatch(text)
    if found is None:
        return None
    sign, digits = found.groups()
    if not digits.isascii():  # \d matches any Unicode decimal digit, as int() accepts
        digits = "".join(str(unicodedata.decimal(c)) for c in digits)
    digits = digits.lstrip("0") or "0"
    return digits if sign != "-" or digits == "0" else "-" + digits


def has_exact_labeller(domain: Domain) -> bool:
    return isinstance(domain, ExactDomain)


def join_steps(domain: Domain, steps: list[str]) -> str:
    """The response text whose `split_steps` gives back `steps` (used for step prefixes)."""
    return domain.step_separator.join(steps)
