"""The arith testbed as real data: GSM8K-style files that the problem loader reads back, and reference solutions in
the text path's format that the text domain splits, extracts and grades."""

import json

import pytest

from prm_core.domains.arith import ArithConfig, ArithDomain
from prm_core.domains.arith_text import ArithAsText, write_gsm8k_jsonl
from prm_core.domains.problems import load_problem_file
from prm_core.domains.textmath import TextMathDomain

CONFIG = ArithConfig(min_steps=1, max_steps=3, max_num=9)


def test_gsm8k_files_load_back_as_the_same_problems(tmp_path):
    path = write_gsm8k_jsonl(tmp_path / "shard.jsonl", 5, seed=3, config=CONFIG)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["answer"].endswith(f"#### {p.answer}") for r, p in zip(rows, ArithDomain(CONFIG).problems(5, 3)))
    loaded = load_problem_file(path, "shard", strict=True).problems
    expected = list(ArithDomain(CONFIG).problems(5, 3))
    assert loaded["question"].to_list() == [p.question for p in expected]
    assert loaded["answer"].to_list() == [p.answer for p in expected] and loaded["problem_id"][0] == expected[0].problem_id


def test_reference_solutions_read_as_text_path_responses():
    text, domain = TextMathDomain("gsm8k"), ArithAsText(CONFIG)
    for p in domain.problems(10, seed=4):
        solution = domain.reference_solution(p)
        assert domain.prompt(p) == text.prompt(p)
        assert len(text.split_steps(solution)) == p.meta["n_steps"] + 1  # each computation, then the answer
        assert text.grade(text.extract_answer(solution), p.answer)


def test_no_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        write_gsm8k_jsonl(tmp_path / "x.jsonl", 0, seed=0)
