"""The PRM training corpus: what each model is actually fed, with its provenance (algorithms.md §2.5).

One row per training sequence: a method's labelled response (`source = "label"`) or a hard negative made from
one of its trusted steps (`source = "hard_negative"`, see hard_negatives.py). Responses without any step are
dropped and counted, never silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl

from prm_core.hard_negatives import hard_negative
from prm_core.prm_model import PRMExample

CORPUS_SCHEMA = {
    "method": pl.String,
    "example_id": pl.String,
    "response_id": pl.String,
    "problem_id": pl.String,
    "shard": pl.String,
    "source": pl.String,
    "prompt": pl.String,
    "steps": pl.List(pl.String),
    "targets": pl.List(pl.Float64),
    "self_confidence": pl.Float64,
    "rollouts": pl.Int64,
}


@dataclass(frozen=True)
class CorpusConfig:
    hard_negatives: int = 1  # per labelled response
    min_label: float = 0.5  # a step is trusted when its label is at least this
    seed: int = 0


def build_corpus(labels: pl.DataFrame, prompts: dict[str, str], cfg: CorpusConfig) -> tuple[pl.DataFrame, dict]:
    """The training rows of one method's labels (LABEL_SCHEMA) plus their hard negatives, and counts."""
    rows, empty = [], 0
    for r in labels.iter_rows(named=True):
        if not r["steps"]:
            empty += 1
            continue
        base = (r["method"], r["response_id"], r["problem_id"], r["shard"])
        prov = (r["self_confidence"], r["rollouts"])
        rows.append((base[0], r["response_id"], *base[1:], "label", prompts[r["problem_id"]], r["steps"], r["labels"], *prov))
        rng = random.Random(f"hard-negative-{cfg.seed}-{r['method']}-{r['response_id']}")
        for k in range(cfg.hard_negatives):
            hn = hard_negative(r["steps"], r["labels"], rng, cfg.min_label)
            if hn is not None:
                rows.append((base[0], f"{r['response_id']}/hn{k}", *base[1:], "hard_negative",
                             prompts[r["problem_id"]], hn[0], hn[1], *prov))
    df = pl.DataFrame(rows, schema=CORPUS_SCHEMA, orient="row")
    counts = {"labelled": int((df["source"] == "label").sum()), "hard_negatives": int((df["source"] == "hard_negative").sum()),
              "dropped_empty": empty, "steps": int(df["steps"].list.len().sum() or 0)}
    return df, counts


def examples(corpus: pl.DataFrame) -> list[PRMExample]:
    return [PRMExample(p, s, t) for p, s, t in corpus.select("prompt", "steps", "targets").iter_rows()]
