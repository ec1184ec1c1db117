"""Exports of a label set in the formats the field uses (peers.md §3-4), each loadable by its consumer.

| format        | file             | row                                                                 |
| trl           | trl.jsonl        | prompt, completions, labels (bool) — TRL stepwise supervision        |
| processbench  | processbench.json| id, generator, problem, steps, final_answer_correct, label (1st err) |
| scan          | scan.jsonl       | question, steps, scores                                              |
| math_shepherd | math_shepherd.jsonl | input with `ки` step tags, label with `+`/`-`                      |
| hf            | hf/ (Parquet + README.md dataset card) — our schema with provenance columns      |

Input: `denoised_labels` rows joined with their problems (`question`, `prompt`), the response's final-answer
grade and the policy's model version.
"""

from __future__ import annotations

import json

import polars as pl

from prm_core.lineage.storage import as_path, write_parquet, write_text

STEP_TAG = "ки"
FORMATS = ("trl", "processbench", "scan", "math_shepherd", "hf")


def first_error_of(hard_labels: list[int]) -> int:
    """ProcessBench's label: the first step labelled wrong, -1 if none."""
    return next((i for i, h in enumerate(hard_labels) if not h), -1)


def export_rows(labels: pl.DataFrame, problems: pl.DataFrame, rollouts: pl.DataFrame, model_version: str) -> pl.DataFrame:
    """Labels with everything an export needs: question, prompt, final-answer grade, provenance."""
    return (
        labels.join(problems.select("problem_id", "question", "prompt"), on="problem_id", how="left", maintain_order="left")
        .join(rollouts.select("response_id", pl.col("correct").alias("final_answer_correct")), on="response_id", how="left",
              maintain_order="left")  # the labels' order: exports are byte-reproducible
        .with_columns(model_version=pl.lit(model_version))
    )


def _jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def to_trl(rows: pl.DataFrame) -> list[dict]:
    return [{"prompt": r["prompt"], "completions": r["steps"], "labels": [bool(h) for h in r["hard_labels"]]}
            for r in rows.iter_rows(named=True)]


def to_processbench(rows: pl.DataFrame) -> list[dict]:
    return [{"id": r["response_id"], "generator": r["model_version"], "problem": r["question"], "steps": r["steps"],
             "final_answer_correct": bool(r["final_answer_correct"]), "label": first_error_of(r["hard_labels"])}
            for r in rows.iter_rows(named=True)]


def to_scan(rows: pl.DataFrame) -> list[dict]:
    return [{"question": r["question"], "steps": r["steps"], "scores": r["labels"]} for r in rows.iter_rows(named=True)]


def to_math_shepherd(rows: pl.DataFrame) -> list[dict]:
    """`Step i: … ки` per step; the label string has `+`/`-` where the tags are."""
    out = []
    for r in rows.iter_rows(named=True):
        body = "\n".join(f"Step {i + 1}: {s} {STEP_TAG}" for i, s in enumerate(r["steps"]))
        label = body
        for h in r["hard_labels"]:
            label = label.replace(STEP_TAG, "+" if h else "-", 1)
        out.append({"input": f"{r['question']} {body}", "label": f"{r['question']} {label}"})
    return out


def parse_math_shepherd(label: str) -> list[bool]:
    """The step labels written in a Math-Shepherd label string."""
    import re

    return [m == "+" for m in re.findall(r" ([+-])(?=\n|$)", label)]


DATASET_CARD = """---
license: apache-2.0
task_categories: [text-classification]
tags: [process-reward-model, math, prm-foundry]
configs:
- config_name: default
  data_files: data.parquet
---
# {name}

Step-level process labels made by PRM Foundry (method: {methods}).

- rows: {rows} responses, {steps} labelled steps ({positives} positive responses, {negatives} negative)
- columns: `prompt`, `question`, `steps` (list of str), `labels` (soft targets in [0, 1]),
  `hard_labels` (1 = step judged correct), `predicted_error` (first detected error, -1 if none), and the
  provenance of every label: `problem_id`, `response_id`, `method`, `rollouts`, `model_version`, `self_confidence`.
- labelling: Monte Carlo rollouts by the policy itself (vanilla: every step; SCAN: confident questions,
  incorrect responses only, confidence-scaled soft labels on the d steps before the detected error); `oracle`:
  the arith checker's exact step labels of vanilla's responses (no rollouts).
"""


def export(rows: pl.DataFrame, out_dir, formats=FORMATS, name: str = "prm-foundry-labels") -> dict[str, str]:
    """Write the label set in each format under `out_dir`; returns format -> path."""
    out_dir = as_path(out_dir)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    written = {}
    if "trl" in formats:
        write_text(_jsonl(to_trl(rows)), out_dir / "trl.jsonl")
        written["trl"] = str(out_dir / "trl.jsonl")
    if "processbench" in formats:
        write_text(json.dumps(to_processbench(rows), ensure_ascii=False, indent=1), out_dir / "processbench.json")
        written["processbench"] = str(out_dir / "processbench.json")
    if "scan" in formats:
        write_text(_jsonl(to_scan(rows)), out_dir / "scan.jsonl")
        written["scan"] = str(out_dir / "scan.jsonl")
    if "math_shepherd" in formats:
        write_text(_jsonl(to_math_shepherd(rows)), out_dir / "math_shepherd.jsonl")
        written["math_shepherd"] = str(out_dir / "math_shepherd.jsonl")
    if "hf" in formats:
        cols = ["prompt", "question", "steps", "labels", "hard_labels", "predicted_error", "problem_id", "response_id",
                "method", "rollouts", "model_version", "self_confidence", "is_positive"]
        write_parquet(rows.select(cols), out_dir / "hf" / "data.parquet")
        card = DATASET_CARD.format(
            name=name, methods=", ".join(sorted(rows["method"].unique().to_list())), rows=rows.height,
            steps=int(rows["steps"].list.len().sum()), positives=int(rows["is_positive"].sum()),
            negatives=int((~rows["is_positive"]).sum()),
        )
        write_text(card, out_dir / "hf" / "README.md")
        written["hf"] = str(out_dir / "hf")
    return written
