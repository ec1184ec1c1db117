"""The arith testbed: multi-step arithmetic word problems whose every step can be checked exactly.

A problem is a start quantity followed by operations, one sentence each:

    Tom has 17 pens. He triples his pens. He buys 5 jars of 10. He gives 4 friends 3 each. How many now?

Its solution has one line per computation step, each restating the phrase it comes from (the format decides
learnability for a tiny policy, see testbed-probe.md §1-2), then the answer line:

    triples his pens: 17 * 3 = 51
    buys 5 jars of 10: 5 * 10 = 50
    adds them: 51 + 50 = 101
    gives 4 friends 3 each: 4 * 3 = 12
    removes them: 101 - 12 = 89
    Answer: 89

The checker re-derives the reference steps from the question text, so it labels any text for any question in
this format: a step is correct iff its arithmetic is right AND its operands are the reference operands at that
position (a right sum of a wrong quantity is an error).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterator

from prm_core.domains.base import ExactDomain, GradeOutcome, Problem, StepVerdict, canonical_int

NAMES = ["Tom", "Sam", "Max", "Ben", "Leo", "Jack", "Paul", "Dan", "Tim", "Joe"]
ITEMS = ["pens", "apples", "marbles", "stickers", "cards", "coins", "books", "shells"]
CONTAINERS = ["bags", "jars", "boxes", "packs"]
ADD_VERBS = ["finds", "gets", "buys"]
SUB_VERBS = ["loses", "sells", "gives away"]
MAX_STATE = 999

ANSWER_PREFIX = "Answer:"
_EQUATION = re.compile(r"^\s*(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(-?\d+)\s*$")
_ANSWER = re.compile(r"^\s*Answer:\s*(-?\d+)\s*$")
_ANSWER_ANYWHERE = re.compile(r"Answer:\s*(-?\d+)")

# sentence patterns, in the order the parser tries them
_S_START = re.compile(r"^(?P<name>[A-Z][a-z]+) has (?P<n>\d+) (?P<item>[a-z]+)$")
_S_ADD = re.compile(r"^He (?P<verb>finds|gets|buys) (?P<x>\d+) more$")
_S_SUB = re.compile(r"^He (?P<verb>loses|sells|gives away) (?P<x>\d+)$")
_S_MUL = re.compile(r"^He (?P<verb>doubles|triples) his (?P<item>[a-z]+)$")
_S_DIV = re.compile(r"^He splits his (?P<item>[a-z]+) into (?P<n>\d+) groups and keeps one$")
_S_BUY = re.compile(r"^He buys (?P<k>\d+) (?P<box>[a-z]+) of (?P<m>\d+)$")
_S_GIVE = re.compile(r"^He gives (?P<k>\d+) friends (?P<m>\d+) each$")
_S_QUESTION = "How many now?"


@dataclass(frozen=True)
class RefStep:
    """One reference computation step: `phrase: a op b = result`."""

    phrase: str
    a: int
    op: str
    b: int
    result: int

    def line(self) -> str:
        return f"{self.phrase}: {self.a} {self.op} {self.b} = {self.result}"


@dataclass(frozen=True)
class ArithConfig:
    min_steps: int = 2
    max_steps: int = 6
    max_num: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}..{self.max_steps}")
        if self.max_num < 2:
            raise ValueError(f"max_num must be >= 2, got {self.max_num}")


def _apply(a: int, op: str, b: int) -> int | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b != 0 and a % b == 0 else None
    return None


# ---------------------------------------------------------------- generation


def _sample_op(rng: random.Random, state: int, remaining: int, cfg: ArithConfig) -> tuple[str, list[RefStep]]:
    """One operation that keeps the state in [0, MAX_STATE]: its sentence and its reference steps."""
    while True:
        kinds = ["add", "sub", "mul", "div"] + (["buy", "give"] if remaining >= 2 else [])
        kind = rng.choice(kinds)
        if kind == "add":
            x = rng.randint(1, cfg.max_num)
            verb = rng.choice(ADD_VERBS)
            if state + x <= MAX_STATE:
                phrase = f"{verb} {x} more"
                return f"He {phrase}.", [RefStep(phrase, state, "+", x, state + x)]
        elif kind == "sub" and state >= 1:
            x = rng.randint(1, min(cfg.max_num, state))
            phrase = f"{rng.choice(SUB_VERBS)} {x}"
            return f"He {phrase}.", [RefStep(phrase, state, "-", x, state - x)]
        elif kind == "mul":
            factor = rng.choice([2, 3])
            if state * factor <= MAX_STATE and state >= 1:
                phrase = f"{'doubles' if factor == 2 else 'triples'} his {{item}}"
                return f"He {phrase}.", [RefStep(phrase, state, "*", factor, state * factor)]
        elif kind == "div":
            divisors = [n for n in range(2, 6) if state >= n and state % n == 0]
            if divisors:
                n = rng.choice(divisors)
                phrase = f"splits his {{item}} into {n} groups and keeps one"
                return f"He {phrase}.", [RefStep(phrase, state, "/", n, state // n)]
        elif kind == "buy":
            k, m = rng.randint(2, 9), rng.randint(2, cfg.max_num)
            if state + k * m <= MAX_STATE:
                phrase = f"buys {k} {rng.choice(CONTAINERS)} of {m}"
                return f"He {phrase}.", [
                    RefStep(phrase, k, "*", m, k * m),
                    RefStep("adds them", state, "+", k * m, state + k * m),
                ]
        elif kind == "give":
            k, m = rng.randint(2, 9), rng.randint(1, cfg.max_num)
            if k * m <= state:
                phrase = f"gives {k} friends {m} each"
                return f"He {phrase}.", [
                    RefStep(phrase, k, "*", m, k * m),
                    RefStep("removes them", state, "-", k * m, state - k * m),
                ]


def generate_problem(rng: random.Random, cfg: ArithConfig) -> tuple[str, list[RefStep]]:
    """A question and its reference steps, with a step count uniform in [min_steps, max_steps]."""
    n_steps = rng.randint(cfg.min_steps, cfg.max_steps)
    item = rng.choice(ITEMS)
    state = rng.randint(2, cfg.max_num)
    sentences = [f"{rng.choice(NAMES)} has {state} {item}."]
    steps: list[RefStep] = []
    while len(steps) < n_steps:
        sentence, new = _sample_op(rng, state, n_steps - len(steps), cfg)
        sentences.append(sentence.replace("{item}", item))
        steps.extend(RefStep(s.phrase.replace("{item}", item), s.a, s.op, s.b, s.result) for s in new)
        state = steps[-1].result
    sentences.append(_S_QUESTION)
    return " ".join(sentences), steps


def parse_question(question: str) -> list[RefStep] | None:
    """Re-derive the reference steps from a question in the arith format; None if it is not one."""
    parts = [p.strip() for p in question.strip().split(".") if p.strip()]
    if len(parts) < 2 or parts[-1] != _S_QUESTION.rstrip("."):
        return None
    start = _S_START.match(parts[0])
    if not start:
        return None
    state, steps = int(start["n"]), []
    for sentence in parts[1:-1]:
        if m := _S_ADD.match(sentence):
            x = int(m["x"])
            new = [RefStep(sentence[3:], state, "+", x, state + x)]
        elif m := _S_SUB.match(sentence):
            x = int(m["x"])
            new = [RefStep(sentence[3:], state, "-", x, state - x)]
        elif m := _S_MUL.match(sentence):
            f = 2 if m["verb"] == "doubles" else 3
            new = [RefStep(sentence[3:], state, "*", f, state * f)]
        elif m := _S_DIV.match(sentence):
            n = int(m["n"])
            if n == 0 or state % n:
                return None
            new = [RefStep(sentence[3:], state, "/", n, state // n)]
        elif m := _S_BUY.match(sentence):
            p = int(m["k"]) * int(m["m"])
            new = [RefStep(sentence[3:], int(m["k"]), "*", int(m["m"]), p), RefStep("adds them", state, "+", p, state + p)]
        elif m := _S_GIVE.match(sentence):
            p = int(m["k"]) * int(m["m"])
            new = [
                RefStep(sentence[3:], int(m["k"]), "*", int(m["m"]), p),
                RefStep("removes them", state, "-", p, state - p),
            ]
        else:
            return None
        steps.extend(new)
        state = steps[-1].result
    return steps if steps else None


# ---------------------------------------------------------------- the checker


def _operands_match(line_a: int, line_op: str, line_b: int, ref: RefStep) -> bool:
    if line_op != ref.op:
        return False
    if (line_a, line_b) == (ref.a, ref.b):
        return True
    return ref.op in "+*" and (line_b, line_a) == (ref.a, ref.b)  # commutative order allowed


def _equation_part(line: str) -> str:
    """The equation after the phrase: the text after the last ':' before '=' (testbed-probe.md §8.1)."""
    head, eq, tail = line.partition("=")
    if not eq:
        return line
    return head.rsplit(":", 1)[-1] + "=" + tail


def check_steps(ref: list[RefStep], lines: list[str], gold: int) -> tuple[list[bool], list[str]]:
    """Per-line labels and kinds of a response (local truth; see module docstring)."""
    kinds: list[str] = []
    answer_at = -1
    for i, line in enumerate(lines):
        ans = _ANSWER.match(line)
        if ans:
            if answer_at >= 0:
                kinds.append("extra_step")
            elif i < len(ref):
                kinds.append("premature_answer")
            else:
                kinds.append("ok" if int(ans[1]) == gold else "wrong_answer")
            answer_at = i if answer_at < 0 else answer_at
            continue
        eq = _EQUATION.match(_equation_part(line)) if ":" in line else None
        if eq is None:
            kinds.append("format")
            continue
        if answer_at >= 0 or i >= len(ref):
            kinds.append("extra_step")
            continue
        a, op, b, c = int(eq[1]), eq[2], int(eq[3]), int(eq[4])
        value = _apply(a, op, b)
        arith_ok = value is not None and value == c
        state_ok = _operands_match(a, op, b, ref[i])
        kinds.append({(True, True): "ok", (True, False): "arith", (False, True): "state"}.get((state_ok, arith_ok), "state+arith"))
    if answer_at < 0 and all(k == "ok" for k in kinds):
        kinds[-1] = "no_answer"  # an unfinished response is wrong at its last step
    return [k == "ok" for k in kinds], kinds


# ---------------------------------------------------------------- the domain


class ArithDomain(ExactDomain):
    """Synthetic arithmetic word problems with an exact step checker."""

    name = "arith"
    step_separator = "\n"

    def __init__(self, config: ArithConfig | None = None):
        self.config = config or ArithConfig()

    def problems(self, n: int, seed: int) -> Iterator[Problem]:
        rng = random.Random(f"arith-problems-{seed}")
        for i in range(n):
            question, steps = generate_problem(rng, self.config)
            yield Problem(
                problem_id=f"arith-{seed}-{i:06d}",
                question=question,
                answer=str(steps[-1].result),
                source="arith",
                meta={"n_steps": len(steps)},
            )

    def prompt(self, problem: Problem) -> str:
        return problem.question + "\n"

    def split_steps(self, response: str) -> list[str]:
        lines = [line.strip() for line in response.split("\n") if line.strip()]
        return lines or [""]

    def extract_answer(self, response: str) -> str | None:
        found = _ANSWER_ANYWHERE.findall(response)
        return found[-1] if found else None

    def grade_outcome(self, predicted: str | None, gold: str) -> GradeOutcome:
        """Exact integer equality, compared as canonical strings (any size; a non-integer is wrong)."""
        if predicted is None or not predicted.strip():
            return "no_answer"
        answer = canonical_int(predicted)
        return "correct" if answer is not None and answer == canonical_int(gold) else "wrong"

    def reference_steps(self, problem: Problem) -> list[RefStep]:
        steps = parse_question(problem.question)
        if steps is None:
            raise ValueError(f"problem {problem.problem_id!r} is not an arith question: {problem.question!r}")
        return steps

    def reference_solution(self, problem: Problem) -> str:
        steps = self.reference_steps(problem)
        return "\n".join([s.line() for s in steps] + [f"{ANSWER_PREFIX} {steps[-1].result}"])

    def label_steps(self, problem: Problem, response: str) -> StepVerdict:
        lines = self.split_steps(response)
        try:
            ref = self.reference_steps(problem)
            gold = int(problem.answer)
        except ValueError:
            ref, gold = None, None
        if ref is None or gold is None:
            kinds = ["unverifiable"] * len(lines)
            return StepVerdict([False] * len(lines), kinds, 0, False)
        labels, kinds = check_steps(ref, lines, gold)
        first_error = next((i for i, ok in enumerate(labels) if not ok), -1)
        return StepVerdict(labels, kinds, first_error, self.grade(self.extract_answer(response), problem.answer))
