"""Training labels from MC estimates, one schema for every method (algorithms.md §1.3, §2.2, §2.3 step 7).

SCAN: steps after the detected error t_e are removed, the d steps before it (d = the MC rows' `soft_window`, the
window the labeller valued) get `soft_label.scan_soft_labels`;
correct responses of kept questions are all-1 positives; responses with no zero are dropped. Vanilla
(Math-Shepherd) keeps every step with the soft label c_t (hard label c_t > 0). Positives and negatives are
balanced 1:1 by seeded down-sampling when asked (SCAN does). The oracle: exact labels of the same responses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl

from prm_core.labels.soft_label import scan_soft_labels

LABEL_SCHEMA = {
    "method": pl.String,
    "response_id": pl.String,
    "problem_id": pl.String,
    "shard": pl.String,
    "steps": pl.List(pl.String),
    "labels": pl.List(pl.Float64),  # soft targets in [0, 1]
    "hard_labels": pl.List(pl.Int8),  # 1[label > 0]
    "predicted_error": pl.Int32,
    "is_positive": pl.Boolean,
    "self_confidence": pl.Float64,
    "rollouts": pl.Int64,
}


@dataclass(frozen=True)
class LabelConfig:
    balance: bool = True
    seed: int = 0


def _balanced(rows: list[tuple], seed: int, key: str) -> list[tuple]:
    """1:1 positives:negatives by seeded down-sampling of the larger side, original order kept."""
    pos = [i for i, r in enumerate(rows) if r[8]]
    neg = [i for i, r in enumerate(rows) if not r[8]]
    n = min(len(pos), len(neg))
    rng = random.Random(f"balance-{seed}-{key}")
    keep = set(rng.sample(pos, n)) | set(rng.sample(neg, n))
    return [r for i, r in enumerate(rows) if i in keep]


def build_labels(mc: pl.DataFrame, steps_by_response: dict[str, list[str]], cfg: LabelConfig, key: str = "") -> tuple[pl.DataFrame, dict]:
    """Training labels of one method's MC estimates, and counts of what was kept, dropped and balanced away."""
    rows, dropped = [], 0
    methods = mc["method"].unique().to_list()
    if len(methods) > 1:
        raise ValueError(f"build_labels takes one method at a time, got {methods}")
    method = methods[0] if methods else ""
    for group in mc.sort("response_id", "step").partition_by("response_id", maintain_order=True):
        first = group.row(0, named=True)
        rid, t_e, sc = first["response_id"], first["predicted_error"], first["self_confidence"]
        values = group["mc_value"].to_list()
        steps = steps_by_response[rid]
        rollouts = int(group["rollouts"].sum())
        if method == "vanilla":
            labels = [float(v) for v in values]
            positive = t_e == -1
        elif first["response_correct"]:
            labels, positive = [1.0] * len(steps), True
        elif t_e < 0:
            dropped += 1  # no step reached zero: SCAN drops the response
            continue
        else:
            labels, positive, steps = scan_soft_labels(values, t_e, sc, first["soft_window"]), False, steps[: t_e + 1]
        hard = [int(v > 0) for v in labels]
        rows.append((method, rid, first["problem_id"], first["shard"], steps, labels, hard, t_e, positive, sc, rollouts))
    before = len(rows)
    if cfg.balance and method != "vanilla":
        rows = _balanced(rows, cfg.seed, key)
    counts = {"responses": before, "dropped_no_zero": dropped, "balanced_away": before - len(rows),
              "positives": sum(r[8] for r in rows), "negatives": sum(not r[8] for r in rows)}
    return pl.DataFrame(rows, schema=LABEL_SCHEMA, orient="row"), counts


def oracle_labels(truth: pl.DataFrame, steps_by_response: dict[str, list[str]], response_ids: list[str]) -> pl.DataFrame:
    """The ceiling: exact prefix labels of the same responses (1 before the first error, 0 at it, later removed)."""
    rows = []
    by_id = {r["response_id"]: r for r in truth.filter(pl.col("response_id").is_in(response_ids)).iter_rows(named=True)}
    for rid in response_ids:
        r = by_id[rid]
        t_e, steps = r["first_error"], steps_by_response[rid]
        labels = [1.0] * len(steps) if t_e < 0 else [1.0] * t_e + [0.0]
        rows.append(("oracle", rid, r["problem_id"], r["shard"], steps[: len(labels)], labels,
                     [int(v) for v in labels], t_e, t_e < 0, None, 0))
    return pl.DataFrame(rows, schema=LABEL_SCHEMA, orient="row")


def oracle_set(labels: pl.DataFrame, truth: pl.DataFrame, rollouts: pl.DataFrame) -> pl.DataFrame:
    """The `oracle` label set: exact labels of the very responses vanilla MC labelled (the ceiling of both methods)."""
    ids = labels.filter(pl.col("method") == "vanilla")["response_id"].to_list()
    return oracle_labels(truth, dict(zip(rollouts["response_id"], rollouts["steps"].to_list())), ids)
