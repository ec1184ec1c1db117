"""The checked-in bad-input corpus: every row is loaded unaltered or quarantined with its reason, as expected.json
says — non-strict (row by row) and strict (an error naming file:line for each bad row)."""

from pathlib import Path

import polars as pl
import pytest

from prm_core.domains.problems import POOL_SCHEMA, ProblemFileError, load_problem_file
from prm_core.domains.source_folder import problem_files, scan_problem_folder
from tests.support.domains import EXPECTED, FILES, SKIPPED

LINE_FILES = {"json_lines.json"}  # the .json files read as JSON Lines; every other .json is one document


def _bad(name: str) -> dict[int, str]:
    return {int(k): v["quarantine"] for k, v in EXPECTED[name].items() if "quarantine" in v}


def _ok(name: str) -> list[dict]:
    return [v["ok"] for k, v in sorted(EXPECTED[name].items(), key=lambda kv: int(kv[0])) if "ok" in v]


def test_expected_lists_every_corpus_file_and_the_folder_is_a_valid_source():
    assert set(EXPECTED) | set(SKIPPED) == {p.name for p in FILES.iterdir()}
    assert sorted(problem_files(FILES)) == sorted(Path(n).stem for n in EXPECTED)
    found, skipped = scan_problem_folder(FILES)
    assert {name: why for name, why in skipped if why.startswith(SKIPPED.get(name, "?"))} == dict(skipped)
    assert {name for name, _ in skipped} == set(SKIPPED)


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".jsonl") or n in LINE_FILES])
def test_expected_covers_every_nonblank_line(name):
    """Counted apart from the loader: every line with content is a row, blank lines are none."""
    lines = FILES.joinpath(name).read_bytes().split(b"\n")
    assert {i for i, ln in enumerate(lines, start=1) if ln.strip(b" \t\r")} == {int(k) for k in EXPECTED[name]}


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".parquet")])
def test_expected_covers_every_parquet_row(name):
    try:
        rows = set(range(1, pl.read_parquet(FILES / name).height + 1))
    except pl.exceptions.ComputeError:
        rows = {0}  # not Parquet at all: one whole-file row
    assert rows == {int(k) for k in EXPECTED[name]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_row_is_loaded_unaltered_or_quarantined_with_its_reason(name):
    res = load_problem_file(FILES / name, "corpus")
    q = res.quarantine
    got = dict(zip(q["line"].to_list(), q["reason"].to_list()))
    assert len(got) == q.height, "one quarantine row per input row"
    want = _bad(name)
    assert sorted(got) == sorted(want)
    for line, reason in want.items():
        assert reason in got[line], (line, got[line])
    assert res.problems.select("problem_id", "question", "answer").to_dicts() == _ok(name)
    assert res.problems.height + q.height == len(EXPECTED[name])  # 0 dropped, 0 extra
    assert res.problems.schema == pl.Schema(POOL_SCHEMA) and set(q["file"]) <= {str(FILES / name)}
    assert (res.problems["source"] == Path(name).stem).all() and (res.problems["shard"] == "corpus").all()


def _strict_input(tmp_path: Path, name: str, line: int) -> tuple[Path, int]:
    """`name` cut after `line`, earlier bad rows removed (blanked in text files, so line numbers hold), and the
    line the bad row then has."""
    src, out = FILES / name, tmp_path / name
    earlier_bad = set(_bad(name)) - {line}
    if name.endswith(".parquet") and line > 0:
        keep = [i for i in range(1, line + 1) if i not in earlier_bad]
        pl.read_parquet(src)[[i - 1 for i in keep]].write_parquet(out)
        return out, len(keep)
    if name.endswith(".jsonl") or name in LINE_FILES:
        lines = src.read_bytes().split(b"\n")[:line]
        out.write_bytes(b"\n".join(b"" if i in earlier_bad else ln for i, ln in enumerate(lines, start=1)))
        return out, line
    assert not earlier_bad, "a document or unreadable file has one bad row at most: strict stops at the first"
    out.write_bytes(src.read_bytes())
    return out, line


@pytest.mark.parametrize("name,line", [(n, line) for n in sorted(EXPECTED) for line in sorted(_bad(n))])
def test_strict_mode_raises_naming_file_and_line_of_each_bad_row(tmp_path, name, line):
    path, at = _strict_input(tmp_path, name, line)
    with pytest.raises(ProblemFileError) as err:
        load_problem_file(path, "corpus", strict=True)
    assert str(err.value).startswith(f"{path}:{at}: ") and _bad(name)[line] in str(err.value)


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if _bad(n)])
def test_strict_mode_stops_at_the_first_bad_row_of_the_whole_file(name):
    with pytest.raises(ProblemFileError, match=f"^{FILES / name}:{min(_bad(name))}: "):
        load_problem_file(FILES / name, "corpus", strict=True)


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if not _bad(n)])
def test_strict_mode_loads_clean_files_as_non_strict_does(name):
    strict = load_problem_file(FILES / name, "corpus", strict=True)
    assert strict.problems.equals(load_problem_file(FILES / name, "corpus").problems) and strict.quarantine.height == 0
