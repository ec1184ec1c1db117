"""Grade outcomes of both domains: big integers, no answer, math-verify off the main thread, and timeouts."""

import threading
import time

import pytest

from prm_core.domains import textmath
from prm_core.domains.arith import ArithDomain
from prm_core.domains.base import GRADE_OUTCOMES, Domain, ExactDomain, canonical_int
from prm_core.domains.textmath import TextMathDomain

DOMAINS = [ArithDomain(), TextMathDomain()]
BIG = "31415926535" * 909 + "1"  # 10,000 digits: past Python's 4,300-digit int/str conversion limit
BIG_PLUS_ONE = BIG[:-1] + "2"
NINES = "9" * 10_000


def test_outcome_names_and_both_domains_keep_the_interface():
    assert GRADE_OUTCOMES == ("correct", "wrong", "no_answer", "timeout")
    assert isinstance(DOMAINS[0], ExactDomain) and isinstance(DOMAINS[1], Domain)
    assert not isinstance(DOMAINS[1], ExactDomain)


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_a_10000_digit_integer_equals_itself_and_not_itself_plus_one(domain):
    assert len(BIG) == 10_000
    assert domain.grade_outcome(BIG, BIG) == "correct" and domain.grade(BIG, BIG)
    assert domain.grade_outcome(BIG_PLUS_ONE, BIG) == "wrong" and not domain.grade(BIG_PLUS_ONE, BIG)
    assert domain.grade_outcome("1" + "0" * 10_000, NINES) == "wrong"  # NINES + 1, with a carry
    assert domain.grade_outcome("-" + BIG, BIG) == "wrong"
    assert domain.grade_outcome(" 000" + BIG + " ", BIG) == "correct"


def test_textmath_big_numbers_in_other_forms_go_through_math_verify_without_the_limit():
    d = TextMathDomain()
    assert d.grade_outcome(BIG + ".0", BIG) == "correct" and d.grade_outcome(BIG_PLUS_ONE + ".0", BIG) == "wrong"
    assert d.grade_outcome(f"\\frac{{{BIG}0}}{{10}}", BIG) == "correct"


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
@pytest.mark.parametrize("predicted", [None, "", "   \n"])
def test_no_predicted_answer_is_no_answer_and_not_correct(domain, predicted):
    assert domain.grade_outcome(predicted, "72") == "no_answer"
    assert domain.grade(predicted, "72") is False


@pytest.mark.parametrize("text, canonical", [
    ("72", "72"), ("007", "7"), ("+5", "5"), ("-0", "0"), ("-00", "0"), ("-12", "-12"), (" 3 ", "3"),
    ("\u0667\u0662", "72"),  # Arabic-Indic digits, as int() reads them
    ("1,000", None), ("7.0", None), ("1e3", None), ("--1", None), ("", None), ("7_2", None),
])
def test_canonical_int(text, canonical):
    assert canonical_int(text) == canonical


def test_arith_grades_integers_exactly():
    d = ArithDomain()
    assert [d.grade_outcome(p, "72") for p in ("72", "072", "73", "-72", "72.0", "seventy-two")] == [
        "correct", "correct", "wrong", "wrong", "wrong", "wrong"]
    assert d.grade_outcome("5", "not a number") == "wrong"


TEXT_CASES = [  # (predicted, gold, outcome): integers exactly, everything else through math-verify
    ("72", "72", "correct"), ("71", "72", "wrong"),
    ("\\frac{1}{2}", "0.5", "correct"), ("\\frac{1}{3}", "0.5", "wrong"),
    ("1,000", "1000", "correct"), ("\\$18", "18", "correct"), ("18.00", "18", "correct"),
    ("\\sqrt{2}", "2^{1/2}", "correct"), ("seventeen", "18", "wrong"),
]


def test_textmath_grades_on_the_main_thread():
    d = TextMathDomain()
    assert [d.grade_outcome(p, g) for p, g, _ in TEXT_CASES] == [o for _, _, o in TEXT_CASES]


def test_textmath_grades_from_threads():
    """math-verify's own signal-based timeout makes every call off the main thread False; ours must not."""
    d = TextMathDomain()
    results: dict[int, list[str]] = {}

    def grade_all(k: int) -> None:
        results[k] = [d.grade_outcome(p, g) for p, g, _ in TEXT_CASES]

    threads = [threading.Thread(target=grade_all, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert results == {k: [o for _, _, o in TEXT_CASES] for k in range(3)}


def test_a_verifier_that_runs_out_of_time_is_timeout_and_returns_promptly(monkeypatch):
    """9^(9^9) sent to math-verify runs for minutes; the call gives up at TIMEOUT_S, also from a thread."""
    monkeypatch.setattr(textmath, "TIMEOUT_S", 0.5)
    d = TextMathDomain()
    d.grade_outcome("\\frac{1}{2}", "0.5")  # a started worker, so the bound below is the timeout's alone
    outcome: list[str] = []

    def slow() -> None:
        outcome.append(d.grade_outcome("9^{9^{9}}", "1"))

    start = time.monotonic()
    thread = threading.Thread(target=slow)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and time.monotonic() - start < 10
    assert outcome == ["timeout"] and d.grade("9^{9^{9}}", "1") is False
    assert d.grade_outcome("\\frac{1}{2}", "0.5") == "correct"  # a fresh worker takes over


def test_a_worker_that_died_between_calls_is_replaced():
    d = TextMathDomain()
    assert d.grade_outcome("\\frac{1}{2}", "0.5") == "correct"
    textmath._VERIFIER._proc.kill()  # as the OOM killer would
    textmath._VERIFIER._proc.join()
    assert d.grade_outcome("\\frac{1}{4}", "0.25") == "correct"
