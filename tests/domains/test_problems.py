"""Problem files: valid rows load, malformed rows are quarantined with file, line and reason (or raise)."""

import json

import polars as pl
import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.problems import (
    POOL_SCHEMA,
    ProblemFileError,
    load_problem_file,
    synthetic_shard,
)
from prm_core.domains.source_folder import problem_files
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


def test_only_regular_files_inside_the_folder_are_read_and_the_rest_is_named_with_why(tmp_path):
    """A FIFO, a folder named x.jsonl, a symlink loop, a link out of the folder, compressed and unknown suffixes:
    none is opened, each is listed with its reason; `.JSONL` counts as `.jsonl`; a link inside the folder is read."""
    import os

    from prm_core.domains.source_folder import scan_problem_folder

    src, outside = tmp_path / "src", tmp_path / "secrets.jsonl"
    src.mkdir()
    outside.write_text(json.dumps({"question": "secret?", "answer": "1"}))
    (src / "good.JSONL").write_text(json.dumps({"question": "What is 2+2?", "answer": "4"}))
    os.mkfifo(src / "pipe.jsonl")  # reading it would hang
    (src / "dir.jsonl").mkdir()
    os.symlink(src / "loop.jsonl", src / "loop.jsonl")
    os.symlink(outside, src / "leak.jsonl")
    os.symlink(src / "good.JSONL", src / "alias.jsonl")
    for name in ("more.jsonl.gz", "table.csv"):
        (src / name).write_text("x")
    found, skipped = scan_problem_folder(src)
    assert {k: v.name for k, v in found.items()} == {"alias": "alias.jsonl", "good": "good.JSONL"}
    why = dict(skipped)
    assert why["pipe.jsonl"] == "not a regular file (a FIFO)" and why["dir.jsonl"] == "not a regular file (a folder)"
    assert why["loop.jsonl"].startswith("a symbolic link that does not resolve")
    assert why["leak.jsonl"] == "a symbolic link to outside the source folder (not followed)"
    assert why["more.jsonl.gz"].startswith("not a .jsonl/.json/.parquet file") and "table.csv" in why
    assert load_problem_file(found["good"], "good").problems["answer"].to_list() == ["4"]


def test_deep_nesting_surrogates_and_invisible_text_are_quarantined_not_fatal(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    rows = [deep, json.dumps({"question": "What is \ud800?", "answer": "1"}),
            json.dumps({"question": "\u200b\u2060\ufeff", "answer": "1"}), json.dumps({"question": "Fine?", "answer": "\u200b"}),
            json.dumps({"question": "\x01\x02", "answer": "2"}), json.dumps({"question": "What is 1+1?", "answer": "2"})]
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(rows))
    r = load_problem_file(f, "p")
    assert r.problems["question"].to_list() == ["What is 1+1?"]
    reasons = dict(zip(r.quarantine["line"].to_list(), r.quarantine["reason"].to_list()))
    assert reasons == {1: "bad JSON: nested too deeply", 2: "question holds a lone surrogate ('\\ud800' at character 9)",
                       3: "empty problem", 4: "answer is empty", 5: "empty problem"}
    (tmp_path / "d.json").write_text(deep)
    assert load_problem_file(tmp_path / "d.json", "d").quarantine["reason"].to_list() == [
        "not a valid JSON array/document: nested too deeply"]


def test_a_quarantine_named_with_glob_characters_reads_back_as_itself(tmp_path):
    from prm_core.lineage.storage import read_parquet, write_parquet

    write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "x[1],*.parquet")
    write_parquet(pl.DataFrame({"a": [2]}), tmp_path / "x1,a.parquet")  # what the pattern would also match
    assert read_parquet(tmp_path / "x[1],*.parquet")["a"].to_list() == [1]
