"""The problem pool: problems from a generator or from files, validated, sharded.

A shard is the unit of (re)computation: the synthetic source makes shard k from its own seed, a file source
makes one shard per file. Malformed rows never vanish: they go to a quarantine table naming the file, the line
and the reason — or, in strict mode, raise an error saying the same. A row loads only with a non-empty string
question (no null byte, at most `max_question_chars`), a text or finite-number answer that is not a placeholder
("None", "nan", …) and an id that is a string or an integer; nothing is coerced (tests/data/bad_inputs).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from prm_core.domains.base import Domain, Problem
from prm_core.lineage.storage import as_path

POOL_SCHEMA = {
    "problem_id": pl.String,
    "question": pl.String,
    "answer": pl.String,
    "source": pl.String,
    "shard": pl.String,
    "n_steps": pl.Int32,
}
QUARANTINE_SCHEMA = {"file": pl.String, "line": pl.Int64, "reason": pl.String, "raw": pl.String}

QUESTION_FIELDS = ("question", "problem", "prompt", "query")
ANSWER_FIELDS = ("answer", "final_answer", "gt_answer", "solution")
ID_FIELDS = ("id", "unique_id", "problem_id")
PROBLEM_SUFFIXES = (".jsonl", ".json", ".parquet")
MAX_QUESTION_CHARS = 4000  # GSM8K's longest question has 985 characters, MATH-500's 1733
_PLACEHOLDERS = {"", "none", "null", "nan"}  # what a missing value becomes when a table is written as text
_JSON_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace (json.decoder.WHITESPACE)


class ProblemFileError(ValueError):
    """A malformed problem row, in strict mode; the message names the file and line."""


@dataclass(frozen=True)
class LoadResult:
    problems: pl.DataFrame
    quarantine: pl.DataFrame


def shard_key(index: int, prefix: str = "arith") -> str:
    return f"{prefix}-{index:04d}"


def shard_index(key: str) -> int:
    """The integer index of a synthetic shard key such as `arith-0003`."""
    try:
        return int(key.rsplit("-", 1)[1])
    except (IndexError, ValueError) as e:
        raise ValueError(f"shard key {key!r} is not of the form <source>-<index>") from e


def problems_frame(problems: Iterable[Problem], shard: str) -> pl.DataFrame:
    rows = [
        {
            "problem_id": p.problem_id,
            "question": p.question,
            "answer": p.answer,
            "source": p.source,
            "shard": shard,
            "n_steps": p.meta.get("n_steps"),
        }
        for p in problems
    ]
    return pl.DataFrame(rows, schema=POOL_SCHEMA)


def synthetic_shard(domain: Domain, shard: str, shard_size: int, seed: int) -> pl.DataFrame:
    """Shard `shard` of a generated pool: `shard_size` problems from a seed of its own (0: an empty shard)."""
    if shard_size < 0:
        raise ValueError(f"shard_size must be 0 or more, got {shard_size}")
    shard_seed = seed * 100_003 + shard_index(shard)
    return problems_frame(domain.problems(shard_size, shard_seed), shard)


def to_problems(df: pl.DataFrame) -> list[Problem]:
    return [
        Problem(r["problem_id"], r["question"], r["answer"], r["source"], {"n_steps": r["n_steps"]})
        for r in df.iter_rows(named=True)
    ]


def prompts_frame(domain: Domain, pool: pl.DataFrame) -> pl.DataFrame:
    """(problem_id, prompt) for every problem of `pool`, in its order: the text the policy continues."""
    return pl.DataFrame({"problem_id": pool["problem_id"], "prompt": [domain.prompt(p) for p in to_problems(pool)]},
                        schema={"problem_id": pl.String, "prompt": pl.String})


class _Bad(Exception):
    """Why a row goes to quarantine."""


def _describe(value) -> str:
    """A bad value as a reason names it: `null`, `NaN`, `a bool (true)`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bool, int, float)):
        kind = type(value).__name__
        return f"{'an' if kind == 'int' else 'a'} {kind} ({json.dumps(value)})"
    return {"list": "a list", "dict": "an object"}.get(type(value).__name__, f"a {type(value).__name__}")


def _field(row: dict, names: tuple[str, ...], explicit: str | None, missing: str):
    for name in (explicit,) if explicit else names:
        if name in row:
            return row[name]
    raise _Bad(f"missing field {explicit!r}" if explicit else missing)


_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u2060-\u2064\ufeff\x00-\x1f\x7f-\x9f]*")  # zero-width, BOM, controls


def _checked_text(text: str, what: str) -> str:
    """`text` unless it is only invisible characters (then empty) or holds a lone surrogate (not storable)."""
    if _INVISIBLE.fullmatch(text):
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Bad(f"{what} holds a lone surrogate ({text[e.start]!r} at character {e.start + 1})") from None
    return text


def _question(row: dict, field: str | None, max_chars: int) -> str:
    value = _field(row, QUESTION_FIELDS, field, "missing problem/question field")
    if not isinstance(value, str):
        raise _Bad(f"question is {_describe(value)}, not a string")
    text = _checked_text(value.strip(), "question")
    if not text:
        raise _Bad("empty problem")
    if "\x00" in text:
        raise _Bad("question contains a null byte")
    if len(text) > max_chars:
        raise _Bad(f"question has {len(text)} characters, more than max_question_chars={max_chars}")
    return text


def _answer(row: dict, field: str | None) -> str:
    """The gold answer as text: GSM8K's `#### N` tail when present; a finite number as its shortest repr."""
    value = _field(row, ANSWER_FIELDS, field, "missing answer")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    if not isinstance(value, str):
        raise _Bad(f"answer is {_describe(value)}")
    text = _checked_text(value.strip(), "answer")
    if "####" in text:
        text = text.rsplit("####", 1)[1].replace(",", "").strip()
        if not text:
            raise _Bad("empty final answer after '####'")
    if not text:
        raise _Bad("answer is empty")
    if text.lower() in _PLACEHOLDERS:
        raise _Bad(f"answer is the placeholder {text!r}")
    if "\x00" in text:
        raise _Bad("answer contains a null byte")
    return text


def _problem_id(row: dict, default: str) -> str:
    name = next((f for f in ID_FIELDS if f in row), None)
    if name is None:
        return default
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Bad(f"{name} is {_describe(value)}; an id must be a string or an integer")
    if not _checked_text(str(value).strip(), name):
        raise _Bad(f"{name} is empty")
    if "\x00" in str(value):
        raise _Bad(f"{name} contains a null byte")
    return str(value)


def _parquet_records(path, reject) -> list[tuple[int, object, str]]:
    try:
        with path.open("rb") as f:
            rows = pl.read_parquet(f).to_dicts()
    except Exception as e:  # the reader's error type depends on how the file is broken; one file never fails the step
        reject(0, f"not a readable Parquet file: {e}", "")
        return []
    return [(i, r, json.dumps(r, default=str)) for i, r in enumerate(rows, start=1)]


def _line_records(data: bytes, reject) -> Iterator[tuple[int, object, str]]:
    """JSON Lines, decoded line by line, so one undecodable or broken line costs only itself (lazily: strict mode
    names the first bad line)."""
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            reject(i, f"invalid UTF-8 at byte {e.start + 1} of the line", raw.decode("utf-8", "backslashreplace"))
            continue
        if not line.strip(" \t"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            reject(i, f"bad JSON: {e.msg.removesuffix(' at')} at column {e.colno}", line)
            continue
        except ValueError as e:  # e.g. an integer over Python's 4300-digit limit
            reject(i, f"bad JSON: {e}", line)
            continue
        except RecursionError:
            reject(i, "bad JSON: nested too deeply", line[:500])
            continue
        yield i, value, line


def _first_line_is_json(data: bytes) -> bool:
    first = next((ln for ln in data.split(b"\n") if ln.strip()), b"")
    try:
        json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


def _document_records(text: str, value) -> list[tuple[int, object, str]]:
    """The records of a parsed .json document, each with the line it starts on."""
    start = _JSON_WS.match(text).end()
    if not isinstance(value, list):
        return [(text.count("\n", 0, start) + 1, value, text[start:])]
    decoder, records, line, seen = json.JSONDecoder(), [], 1, 0
    i = _JSON_WS.match(text, start + 1).end()
    for _ in value:
        item, end = decoder.raw_decode(text, i)
        line, seen = line + text.count("\n", seen, i), i
        records.append((line, item, text[i:end]))
        i = _JSON_WS.match(text, end).end() + 1  # past the comma
        i = _JSON_WS.match(text, i).end()
    return records


def _json_records(data: bytes, reject) -> list[tuple[int, object, str]] | None:
    """A .json file as one JSON document (array or object); None when it is JSON Lines instead."""
    if not data.strip(b" \t\r\n"):
        return []
    try:
        text = data.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError as e:
        line, error = data.count(b"\n", 0, e.start) + 1, "invalid UTF-8"
    except json.JSONDecodeError as e:
        line, error = e.lineno, f"{e.msg} at line {e.lineno} column {e.colno}"
    except ValueError as e:
        line, error = 1, str(e)
    except RecursionError:
        line, error = 1, "nested too deeply"
    else:
        return _document_records(text, value)
    if _first_line_is_json(data):
        return None
    reject(line, f"not a valid JSON array/document: {error}", data[:500].decode("utf-8", "backslashreplace"))
    return []


def _records(path, reject) -> Iterable[tuple[int, object, str]]:
    """(line, value, raw text) of every row of a file; rows that cannot even be parsed go to `reject`."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_records(path, reject)
    data = path.read_bytes()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # a UTF-8 BOM is an encoding mark, not data
    if suffix == ".json" and (records := _json_records(data, reject)) is not None:
        return records
    return _line_records(data, reject)


def load_problem_file(
    path,
    shard: str,
    question_field: str | None = None,
    answer_field: str | None = None,
    strict: bool = False,
    max_question_chars: int = MAX_QUESTION_CHARS,
) -> LoadResult:
    """Problems of one JSONL (or JSON, or Parquet) file; bad rows to quarantine (or an error if strict).

    `line` is the file's line (Parquet: the 1-based row; 0: the whole file). Stored text is the row's, stripped;
    an answer is GSM8K's `#### N` tail (commas dropped) when it has one, a finite number its shortest repr."""
    if max_question_chars < 1:
        raise ValueError(f"max_question_chars must be at least 1, got {max_question_chars}")
    path = as_path(path)
    name = str(path)
    good, bad, seen = [], [], set()

    def reject(line: int, reason: str, raw: str) -> None:
        if strict:
            raise ProblemFileError(f"{name}:{line}: {reason}")
        bad.append({"file": name, "line": line, "reason": reason, "raw": raw[:500]})

    for line, row, raw in _records(path, reject):
        try:
            if not isinstance(row, dict):
                raise _Bad(f"expected a JSON object, got {_describe(row)}")
            question, answer = _question(row, question_field, max_question_chars), _answer(row, answer_field)
            pid = _problem_id(row, f"{path.stem}-{line:06d}")
            if pid in seen:
                raise _Bad(f"duplicate problem id {pid!r}")
        except _Bad as e:
            reject(line, str(e), raw)
            continue
        seen.add(pid)
        good.append(Problem(pid, question, answer, source=path.stem))
    return LoadResult(problems_frame(good, shard), pl.DataFrame(bad, schema=QUARANTINE_SCHEMA))
