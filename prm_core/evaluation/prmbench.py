"""PRMBench (ssmisya/PRMBench, the 394-row classified subset): fine-grained erroneous-step detection.

Each row is a solution (`modified_process`) whose erroneous steps are listed in `error_steps` (1-based; 11 rows
of the subset name steps past the end of their process: as in PRMBench's own labels, those name no step, and
they are kept visible in `out_of_range_errors`). A PRM
judges a step correct iff its score ≥ τ (0.5, as PRMBench does). Over all steps of a set,

    PRMScore = (F1 on correct steps + F1 on erroneous steps) / 2

reported overall, per error classification and per category (Simplicity, Soundness, Sensitivity).
"""

from __future__ import annotations

import json

import polars as pl

# PRMBench's categories (its mr_eval prmtest_classified task): which error types each groups
CATEGORIES = {
    "redundency": "simplicity", "circular": "simplicity",
    "counterfactual": "soundness", "step_contradiction": "soundness", "domain_inconsistency": "soundness",
    "confidence": "soundness",
    "missing_condition": "sensitivity", "deception": "sensitivity", "multi_solutions": "sensitivity",
}
FIELDS = ("idx", "question", "modified_process", "error_steps", "classification")
PRMBENCH_SCHEMA = {
    "id": pl.String,
    "question": pl.String,
    "prompt": pl.String,
    "steps": pl.List(pl.String),
    "error_steps": pl.List(pl.Int32),  # 0-based
    "out_of_range_errors": pl.List(pl.Int32),  # 1-based numbers past the last step, as given
    "classification": pl.String,
    "category": pl.String,
}


def load_prmbench(path) -> pl.DataFrame:
    """The PRMBench rows of a JSONL file; a malformed row is an error naming the file and line."""
    from prm_core.lineage.storage import as_path

    path = as_path(path)
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{line_no}: not JSON ({e.msg})") from e
        missing = [f for f in FIELDS if f not in r]
        if missing:
            raise ValueError(f"{path}:{line_no}: lacks {missing}")
        steps = list(r["modified_process"])
        if not steps or any(not isinstance(s, str) for s in steps):
            raise ValueError(f"{path}:{line_no}: modified_process must be a non-empty list of step strings")
        numbers = [int(s) for s in r["error_steps"]]
        if any(n < 1 for n in numbers):
            raise ValueError(f"{path}:{line_no}: error_steps {numbers} are 1-based step numbers")
        cls = r["classification"]
        rows.append((str(r["idx"]), r["question"], r["question"] + "\n\n", steps,
                     [n - 1 for n in numbers if n <= len(steps)], [n for n in numbers if n > len(steps)],
                     cls, CATEGORIES.get(cls, "other")))
    return pl.DataFrame(rows, schema=PRMBENCH_SCHEMA, orient="row")


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def prmscore_of(pairs: list[tuple[bool, bool]]) -> dict:
    """PRMScore of (predicted correct, truly correct) step pairs, with both F1s."""
    tp = sum(p and t for p, t in pairs)  # correct steps judged correct
    tn = sum(not p and not t for p, t in pairs)  # erroneous steps caught
    fp = sum(p and not t for p, t in pairs)
    fn = sum(not p and t for p, t in pairs)
    f1_correct, f1_error = _f1(tp, fp, fn), _f1(tn, fn, fp)
    return {"steps": len(pairs), "f1_correct": f1_correct, "f1_error": f1_error, "prmscore": (f1_correct + f1_error) / 2}


def prmscore(frame: pl.DataFrame, step_scores: list[list[float]], tau: float = 0.5) -> pl.DataFrame:
    """PRMScore overall, per category and per classification (frame: `load_prmbench`, one score list per row)."""
    groups: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    samples: dict[tuple[str, str], int] = {}
    unscored: dict[tuple[str, str], int] = {}
    for r, scores in zip(frame.iter_rows(named=True), step_scores):
        errors = set(r["error_steps"])
        pairs = [(s >= tau, t not in errors) for t, s in enumerate(scores)]
        for key in (("overall", "all"), ("category", r["category"]), ("classification", r["classification"])):
            groups.setdefault(key, []).extend(pairs)
            samples[key] = samples.get(key, 0) + 1
            # steps past the PRM's max length get no score: counted here, never silently dropped
            unscored[key] = unscored.get(key, 0) + len(r["steps"]) - len(scores)
    return pl.DataFrame([{"level": level, "group": name, "samples": samples[(level, name)], **prmscore_of(pairs),
                          "unscored_steps": unscored[(level, name)]} for (level, name), pairs in groups.items()])
