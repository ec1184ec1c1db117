"""The problem pool: problems from a generator or from files, validated, sharded.

A shard is the unit of (re)computation: the synthetic source makes shard k from its own seed, a file source
makes one shard per file. Malformed rows never vanish: they go to a quarantine table naming the file, the line
and the reason — or, in strict mode, raise an error saying the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
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
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


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
    """Shard `shard` of a generated pool: `shard_size` problems from a seed of its own."""
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


def _final_answer(value) -> str | None:
    """The gold answer of a field: GSM8K's `#### N` tail when present, else the value as text."""
    if value is None:
        return None
    text = str(value).strip()
    if m := _GSM8K_FINAL.search(text):
        return m[1].replace(",", "").strip()
    return text


def _pick(row: dict, fields: tuple[str, ...], explicit: str | None):
    if explicit:
        return row.get(explicit)
    return next((row[f] for f in fields if f in row), None)


def load_problem_file(
    path,
    shard: str,
    question_field: str | None = None,
    answer_field: str | None = None,
    strict: bool = False,
) -> LoadResult:
    """Problems of one JSONL (or JSON-array, or Parquet) file; bad rows to quarantine (or an error if strict)."""
    path = as_path(path)
    name = str(path)
    good, bad = [], []

    def reject(line: int, reason: str, raw: str) -> None:
        if strict:
            raise ProblemFileError(f"{name}:{line}: {reason}")
        bad.append({"file": name, "line": line, "reason": reason, "raw": raw[:500]})

    if path.suffix == ".parquet":
        with path.open("rb") as f:
            records = [(i + 1, r, json.dumps(r, default=str)) for i, r in enumerate(pl.read_parquet(f).to_dicts())]
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".json" and text.lstrip().startswith("["):
            try:
                records = [(i + 1, r, json.dumps(r)) for i, r in enumerate(json.loads(text))]
            except json.JSONDecodeError as e:
                raise ProblemFileError(f"{name}: not a valid JSON array: {e}") from e
        else:
            records = []
            for i, raw in enumerate(text.splitlines(), start=1):
                if not raw.strip():
                    continue
                try:
                    records.append((i, json.loads(raw), raw))
                except json.JSONDecodeError as e:
                    reject(i, f"bad JSON: {e.msg} at column {e.colno}", raw)
    seen: set[str] = set()
    for line, row, raw in records:
        if not isinstance(row, dict):
            reject(line, f"expected a JSON object, got {type(row).__name__}", raw)
            continue
        question = _pick(row, QUESTION_FIELDS, question_field)
        answer = _final_answer(_pick(row, ANSWER_FIELDS, answer_field))
        if question is None or not str(question).strip():
            reject(line, "empty problem" if question is not None else "missing problem/question field", raw)
            continue
        if answer is None or not answer:
            reject(line, "missing answer", raw)
            continue
        pid = str(row.get("id") or row.get("unique_id") or row.get("problem_id") or f"{path.stem}-{line:06d}")
        if pid in seen:
            reject(line, f"duplicate problem id {pid!r}", raw)
            continue
        seen.add(pid)
        good.append(Problem(pid, str(question).strip(), answer, source=path.stem))
    return LoadResult(problems_frame(good, shard), pl.DataFrame(bad, schema=QUARANTINE_SCHEMA))
