"""Problem files: valid rows load, malformed rows are quarantined with file, line and reason (or raise)."""

import json

import polars as pl
import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.problems import ProblemFileError, load_problem_file, synthetic_shard
from tests.conftest import SHARED_DATA

BAD_LINES = [
    json.dumps({"question": "What is 2+2?", "answer": "4"}),
    '{"question": "broken json", "answer": ',
    json.dumps({"question": "No answer here"}),
    json.dumps({"question": "   ", "answer": "3"}),
    "",
    json.dumps(["not", "an", "object"]),
    json.dumps({"problem": "What is 3*3?", "answer": "#### 9"}),
]


def test_malformed_rows_go_to_quarantine_with_file_line_and_reason(tmp_path):
    f = tmp_path / "shard-a.jsonl"
    f.write_text("\n".join(BAD_LINES) + "\n")
    res = load_problem_file(f, "shard-a")
    assert res.problems["question"].to_list() == ["What is 2+2?", "What is 3*3?"]
    assert res.problems["answer"].to_list() == ["4", "9"]
    q = res.quarantine
    assert q["line"].to_list() == [2, 3, 4, 6]
    reasons = q["reason"].to_list()
    assert reasons[0].startswith("bad JSON") and reasons[1] == "missing answer" and reasons[2] == "empty problem"
    assert "JSON object" in reasons[3]
    assert set(q["file"].to_list()) == {str(f)}


def test_strict_mode_names_file_and_line(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(BAD_LINES))
    with pytest.raises(ProblemFileError, match=r"s\.jsonl:2: bad JSON"):
        load_problem_file(f, "s", strict=True)


def test_duplicate_ids_are_quarantined(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"id": "x", "question": f"q{i}", "answer": "1"}) for i in range(2)))
    res = load_problem_file(f, "d")
    assert res.problems.height == 1 and "duplicate" in res.quarantine["reason"][0]


def test_parquet_source(tmp_path):
    f = tmp_path / "p.parquet"
    pl.DataFrame({"question": ["a", ""], "answer": ["1", "2"]}).write_parquet(f)
    res = load_problem_file(f, "p")
    assert res.problems.height == 1 and res.quarantine["reason"].to_list() == ["empty problem"]


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").exists(), reason="shared data not present")
def test_real_gsm8k_loads_with_final_answers():
    res = load_problem_file(SHARED_DATA / "gsm8k" / "test.jsonl", "gsm8k-test")
    assert res.problems.height == 1319 and res.quarantine.height == 0
    assert res.problems["answer"].str.contains("####").sum() == 0


def test_synthetic_shards_are_seeded_and_distinct():
    d = ArithDomain()
    a, b = synthetic_shard(d, "arith-0000", 10, 0), synthetic_shard(d, "arith-0001", 10, 0)
    assert a.equals(synthetic_shard(d, "arith-0000", 10, 0))
    assert set(a["problem_id"]).isdisjoint(b["problem_id"])
    assert a["shard"].unique().to_list() == ["arith-0000"]
