"""The PRM training corpus: what each model is actually fed, with its provenance (algorithms.md §2.5).

One row per training sequence: a method's labelled response (`source = "label"`) or a hard negative made from
one of its trusted steps (`source = "hard_negative"`, see hard_negatives.py). Targets are the method's soft
labels, or its hard labels 1[label > 0] where the method trains on those (vanilla, as Math-Shepherd does). Responses without any step are
dropped and counted, never silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl

from prm_core.prm.encoding import PRMExample
from prm_core.prm.hard_negatives import hard_negative

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


HARD_TARGET_METHODS = ("vanilla",)  # Math-Shepherd trains on 1[c_t > 0]; SCAN on its soft labels (§1.3, §2.5)


@dataclass(frozen=True)
class CorpusConfig:
    hard_negatives: int = 1  # per labelled response
    min_label: float = 0.5  # a step is trusted when its label is at least this
    targets: str = "auto"  # "soft", "hard", or "auto": hard for HARD_TARGET_METHODS, soft otherwise
    seed: int = 0

    def __post_init__(self) -> None:
        if self.targets not in ("auto", "soft", "hard"):
            raise ValueError(f"targets must be auto, soft or hard, got {self.targets!r}")

    def hard(self, method: str) -> bool:
        return self.targets == "hard" or (self.targets == "auto" and method in HARD_TARGET_METHODS)


def build_corpus(labels: pl.DataFrame, prompts: dict[str, str], cfg: CorpusConfig) -> tuple[pl.DataFrame, dict]:
    """The training rows of one method's labels (LABEL_SCHEMA) plus their hard negatives, and counts."""
    rows, empty = [], 0
    for r in labels.iter_rows(named=True):
        if not r["steps"]:
            empty += 1
            continue
        base = (r["method"], r["response_id"], r["problem_id"], r["shard"])
        prov = (r["self_confidence"], r["rollouts"])
        targets = [float(h) for h in r["hard_labels"]] if cfg.hard(r["method"]) else r["labels"]
        rows.append((base[0], r["response_id"], *base[1:], "label", prompts[r["problem_id"]], r["steps"], targets, *prov))
        rng = random.Random(f"hard-negative-{cfg.seed}-{r['method']}-{r['response_id']}")
        for k in range(cfg.hard_negatives):
            hn = hard_negative(r["steps"], targets, rng, cfg.min_label)
            if hn is not None:
                rows.append((base[0], f"{r['response_id']}/hn{k}", *base[1:], "hard_negative",
                             prompts[r["problem_id"]], hn[0], hn[1], *prov))
    df = pl.DataFrame(rows, schema=CORPUS_SCHEMA, orient="row")
    counts = {"labelled": int((df["source"] == "label").sum()), "hard_negatives": int((df["source"] == "hard_negative").sum()),
              "dropped_empty": empty, "steps": int(df["steps"].list.len().sum() or 0)}
    return df, counts


def examples(corpus: pl.DataFrame) -> list[PRMExample]:
    return [PRMExample(p, s, t) for p, s, t in corpus.select("prompt", "steps", "targets").iter_rows()]
