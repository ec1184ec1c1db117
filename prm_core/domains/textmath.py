"""Real math data sets (GSM8K, MATH, any question/answer file): graded with math-verify, no exact step labeller.

Responses are split into steps on blank lines (SCAN's convention, algorithms.md §2.8); the final answer is the
last `\\boxed{...}`, else the text after "answer is", else GSM8K's `#### N`.

Grading: two plain integers are compared exactly as strings (most GSM8K answers; any size); anything else goes
to math-verify in one spawned worker process (without Python's int/str digit limit), which the caller waits on
for at most `TIMEOUT_S` from any thread and kills when it runs out ("timeout") — math-verify's own timeouts use
SIGALRM, which fails off the main thread (every call was False there) and cannot interrupt a long C call.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
from typing import Iterator

from prm_core.domains.base import Domain, GradeOutcome, Problem, canonical_int

TIMEOUT_S = 5.0  # seconds one math-verify grading (both parses and the comparison) may take before it is "timeout"
STARTUP_TIMEOUT_S = 120.0  # seconds a fresh worker may take to import math-verify (not counted in TIMEOUT_S)

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


def _math_verify_equal(predicted: str, gold: str) -> bool:
    """math-verify equivalence with its signal timeouts off (the worker's caller enforces the deadline)."""
    from math_verify import parse, verify

    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=None)
        return bool(verify(gold_parsed, parse(f"${predicted}$", parsing_timeout=None), timeout_seconds=None))
    except Exception:  # math-verify's own convention: what it cannot parse or compare is not equal
        return False


def _serve(conn) -> None:
    """The worker loop: answer (predicted, gold) requests until the pipe closes."""
    import logging
    import sys

    sys.set_int_max_str_digits(0)  # the limit bounds int/str conversion time; here the caller's kill bounds it
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout disabled" warning is expected here
    _math_verify_equal("1", "1")  # import and warm up before saying ready, so start-up is not graded time
    conn.send("ready")
    while True:
        try:
            predicted, gold = conn.recv()
        except EOFError:
            return
        conn.send(_math_verify_equal(predicted, gold))


class _Verifier:
    """One lazily spawned math-verify worker per process; calls are serialised by a lock (spawn, not fork: the
    pipeline runs threads and CUDA). A daemon, so it never keeps the process from exiting."""

    def __init__(self):
        self._forget()

    def _forget(self) -> None:
        """No worker; also run in a forked child, whose copy of the parent's worker and lock are not its own."""
        self._lock = threading.Lock()
        self._proc = self._conn = None

    def equal(self, predicted: str, gold: str, timeout_s: float) -> bool | None:
        """math-verify's verdict, or None when it took longer than `timeout_s` (the worker is then killed)."""
        with self._lock:
            if self._proc is not None and not self._proc.is_alive():
                self._stop()
            if self._proc is None:
                self._start()
            try:
                self._conn.send((predicted, gold))
                verdict = self._conn.recv() if self._conn.poll(timeout_s) else None
            except (EOFError, OSError) as error:
                self._stop()
                died = f"the math-verify worker died grading {predicted[:80]!r} against gold {gold[:80]!r}"
                raise RuntimeError(died) from error
            except BaseException:
                self._stop()  # an interrupted exchange would leave its answer in the pipe for the next call
                raise
            if verdict is None:
                self._stop()
            return verdict

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="math-verify")
        self._proc.start()
        child.close()
        if not self._conn.poll(STARTUP_TIMEOUT_S) or self._conn.recv() != "ready":
            self._stop()
            raise RuntimeError(f"the math-verify worker did not start within {STARTUP_TIMEOUT_S} s")

    def _stop(self) -> None:
        self._proc.kill()
        self._proc.join()
        self._conn.close()
        self._proc = self._conn = None


_VERIFIER = _Verifier()
os.register_at_fork(after_in_child=_VERIFIER._forget)


class TextMathDomain(Domain):
    """GSM8K / MATH style problems, graded exactly for integers and by math-verify otherwise."""

    step_separator = "\n\n"

    def __init__(self, name: str = "text", rows: list[Problem] | None = None):
        self.name = name
        self.rows = rows or []

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

    def grade_outcome(self, predicted: str | None, gold: str) -> GradeOutcome:
        """Exact for two integers, else math-verify within TIMEOUT_S; what it cannot parse is wrong."""
        if predicted is None or not predicted.strip():
            return "no_answer"
        answer, expected = canonical_int(predicted), canonical_int(gold)
        if answer is not None and expected is not None:
            return "correct" if answer == expected else "wrong"
        equal = _VERIFIER.equal(predicted, gold, TIMEOUT_S)
        return "timeout" if equal is None else "correct" if equal else "wrong"
