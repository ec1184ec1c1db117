"""The arith generator and its exact checker."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prm_core.domains.arith import ArithConfig, ArithDomain, generate_problem, parse_question
from prm_core.domains.base import Problem

configs = st.builds(
    lambda lo, span, mx: ArithConfig(min_steps=lo, max_steps=lo + span, max_num=mx),
    st.integers(1, 6), st.integers(0, 3), st.sampled_from([5, 20, 50, 99]),
)


@settings(max_examples=200, deadline=None)
@given(cfg=configs, seed=st.integers(0, 10**6))
def test_reference_solutions_are_correct_and_in_range(cfg, seed):
    question, steps = generate_problem(random.Random(seed), cfg)
    assert cfg.min_steps <= len(steps) <= cfg.max_steps
    assert parse_question(question) == steps  # the checker re-derives exactly the generator's steps
    d = ArithDomain(cfg)
    p = Problem("p", question, str(steps[-1].result))
    verdict = d.label_steps(p, d.reference_solution(p))
    assert verdict.first_error == -1 and verdict.final_correct and all(verdict.labels)
    assert all(0 <= s.result <= 999 for s in steps)


def _problem(seed=3, cfg=ArithConfig(min_steps=4, max_steps=4)):
    return next(ArithDomain(cfg).problems(1, seed))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10**5), data=st.data())
def test_a_wrong_result_is_an_arith_error_at_that_step(seed, data):
    d = ArithDomain(ArithConfig(min_steps=3, max_steps=6))
    p = next(d.problems(1, seed))
    lines = d.reference_solution(p).split("\n")
    k = data.draw(st.integers(0, len(lines) - 2))
    head, value = lines[k].rsplit("= ", 1)
    lines[k] = f"{head}= {int(value) + data.draw(st.sampled_from([1, 2, 10, -1]))}"
    v = d.label_steps(p, "\n".join(lines))
    assert v.first_error == k and v.kinds[k] == "arith"


def test_right_arithmetic_on_a_wrong_quantity_is_an_error():
    d = ArithDomain()
    p = Problem("p", "Tom has 10 pens. He finds 5 more. He doubles his pens. How many now?", "30")
    # step 1 uses 10 instead of 15: arithmetically right, but not the problem's state
    v = d.label_steps(p, "finds 5 more: 10 + 5 = 15\ndoubles his pens: 10 * 2 = 20\nAnswer: 20")
    assert v.first_error == 1 and v.kinds[1] == "state" and not v.final_correct


def test_commutative_order_is_accepted_for_plus_and_times_only():
    d = ArithDomain()
    p = Problem("p", "Tom has 10 pens. He finds 5 more. He loses 3. How many now?", "12")
    assert d.label_steps(p, "finds 5 more: 5 + 10 = 15\nloses 3: 15 - 3 = 12\nAnswer: 12").first_error == -1
    v = d.label_steps(p, "finds 5 more: 10 + 5 = 15\nloses 3: 3 - 15 = -12\nAnswer: 12")
    assert v.first_error == 1


def test_the_equation_is_read_after_the_phrase():
    d = ArithDomain()
    p = Problem("p", "Tom has 10 pens. He buys 2 jars of 4. How many now?", "18")
    good = "buys 2 jars of 4: 2 * 4 = 8\nadds them: 10 + 8 = 18\nAnswer: 18"
    assert d.label_steps(p, good).first_error == -1


@pytest.mark.parametrize(
    "text,first_error,kind,final",
    [
        ("finds 5 more: 10 + 5 = 15\nAnswer: 15", 1, "premature_answer", False),
        ("finds 5 more: 10 + 5 = 15\nloses 3: 15 - 3 = 12", 1, "no_answer", False),
        ("finds 5 more: 10 + 5 = 15\nloses 3: 15 - 3 = 12\nloses 3: 12 - 3 = 9\nAnswer: 9", 2, "extra_step", False),
        ("finds 5 more: 10 + 5 = 15\nloses 3: 15 - 3 = 12\nAnswer: 13", 2, "wrong_answer", False),
        # a right answer after a malformed step: the process is wrong, the outcome right
        ("finds 5 more 10 + 5 = 15\nloses 3: 15 - 3 = 12\nAnswer: 12", 0, "format", True),
        ("", 0, "format", False),
    ],
)
def test_error_kinds(text, first_error, kind, final):
    d = ArithDomain()
    p = Problem("p", "Tom has 10 pens. He finds 5 more. He loses 3. How many now?", "12")
    v = d.label_steps(p, text)
    assert (v.first_error, v.kinds[v.first_error], v.final_correct) == (first_error, kind, final)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.from_regex(r"([a-z ]{0,10}:? ?\d{0,4} ?[-+*/=]? ?\d{0,4} ?=? ?-?\d{0,5}\n){0,8}(Answer: ?-?\d{0,4})?", fullmatch=True))
def test_checker_never_crashes_on_garbage(text):
    d = ArithDomain()
    p = _problem()
    v = d.label_steps(p, text)
    assert len(v.labels) == len(v.kinds) == len(d.split_steps(text)) >= 1
    assert v.first_error == -1 or 0 <= v.first_error < len(v.labels)
    assert v.first_error >= 0 or v.final_correct  # no error found implies a correct answer


def test_unparseable_question_is_unverifiable_not_a_crash():
    d = ArithDomain()
    v = d.label_steps(Problem("p", "What is love?", "42"), "Answer: 42")
    assert v.first_error == 0 and v.kinds == ["unverifiable"]


def test_problems_are_seeded():
    a = [p.question for p in ArithDomain().problems(20, seed=7)]
    b = [p.question for p in ArithDomain().problems(20, seed=7)]
    c = [p.question for p in ArithDomain().problems(20, seed=8)]
    assert a == b and a != c


def test_config_is_validated():
    with pytest.raises(ValueError, match="min_steps"):
        ArithConfig(min_steps=5, max_steps=2)
