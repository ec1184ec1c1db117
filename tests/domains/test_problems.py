"""Problem files: valid rows load, malformed rows are quarantined with file, line and reason (or raise)."""

import json

import polars as pl
import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.problems import (
    POOL_SCHEMA,
    ProblemFileError,
    load_problem_file,
    problem_files,
    synthetic_shard,
)
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


def test_synthetic_shard_of_size_zero_is_an_empty_frame_with_the_pool_schema():
    empty = synthetic_shard(ArithDomain(), "arith-0000", 0, 0)
    assert empty.height == 0 and empty.schema == pl.Schema(POOL_SCHEMA)
    with pytest.raises(ValueError, match="shard_size must be 0 or more, got -5"):
        synthetic_shard(ArithDomain(), "arith-0000", -5, 0)


def test_problem_files_maps_stems_to_files_sorted(tmp_path):
    for name in ("b.jsonl", "a.parquet", "c.json", "notes.txt", "d.csv"):
        (tmp_path / name).write_text("")
    assert {k: v.name for k, v in problem_files(tmp_path).items()} == {"a": "a.parquet", "b": "b.jsonl", "c": "c.json"}
    assert list(problem_files(tmp_path)) == ["a", "b", "c"]


def test_two_files_of_one_stem_are_an_error_naming_both(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"question": "q", "answer": "1"}))
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ProblemFileError, match=r"shard key 'x': .*x\.jsonl and .*x\.parquet"):
        problem_files(tmp_path)


def test_problem_files_names_a_missing_folder_a_file_or_a_folder_without_problems(tmp_path):
    with pytest.raises(ProblemFileError, match="does not exist"):
        problem_files(tmp_path / "nope")
    (tmp_path / "f.jsonl").write_text("")
    with pytest.raises(ProblemFileError, match="is not a folder"):
        problem_files(tmp_path / "f.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProblemFileError, match="no .jsonl/.json/.parquet problem files"):
        problem_files(tmp_path / "empty")


def test_max_question_chars_is_a_knob(tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text("\n".join(json.dumps({"question": "x" * n, "answer": "1"}) for n in (10, 11)))
    res = load_problem_file(f, "long", max_question_chars=10)
    assert res.problems["question"].to_list() == ["x" * 10]
    assert res.quarantine["reason"].to_list() == ["question has 11 characters, more than max_question_chars=10"]
    with pytest.raises(ValueError, match="at least 1"):
        load_problem_file(f, "long", max_question_chars=0)


def test_strict_mode_names_the_first_bad_line_whatever_its_kind(tmp_path):
    """A row that parses but is invalid (line 1) is reported before a later line that does not parse."""
    f = tmp_path / "order.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": None}) + "\n{broken\n")
    with pytest.raises(ProblemFileError, match=r"order\.jsonl:1: answer is null"):
        load_problem_file(f, "order", strict=True)


@pytest.mark.parametrize("suffix,data", [(".jsonl", b""), (".jsonl", b"\n \n"), (".json", b""), (".json", b" \n"),
                                         (".json", b"[]"), (".json", b"\xef\xbb\xbf[\n]\n")])
def test_a_file_without_rows_is_a_zero_row_frame_with_the_pool_schema(tmp_path, suffix, data):
    f = tmp_path / f"e{suffix}"
    f.write_bytes(data)
    res = load_problem_file(f, "e")
    assert res.problems.height == 0 and res.quarantine.height == 0 and res.problems.schema == pl.Schema(POOL_SCHEMA)
