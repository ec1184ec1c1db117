"""Benchmarking a PRM: ProcessBench F1 on a dev/test set (official rule) and best-of-N (algorithms.md §1.1, §1.4).

The threshold is chosen on the dev split only and applied to test; τ = 0.5 is reported too. Best-of-N adds the
within-problem pair order (testbed-probe.md §9): the share of (correct, wrong) candidate pairs of one problem
whose min step scores are ordered right (ties count half) — what a verifier must get right, unlike global AUC.
"""

from __future__ import annotations

import polars as pl

from prm_core.evaluation.best_of_n import Candidate, best_of_n, response_score
from prm_core.evaluation.processbench import choose_threshold, f1_at, predict_first_error

BON_METHODS = ("prm_min", "prm_last", "prm_min_vote", "majority", "pass_at_n", "first")


def processbench_scores(frame: pl.DataFrame, step_scores: list[list[float]]) -> dict:
    """F1 on `test` at the dev-chosen τ and at τ = 0.5, with both accuracies (frame: PB_SCHEMA, `split` dev/test)."""
    splits = frame["split"].to_list()
    labels = frame["label"].to_list()

    def part(name):
        idx = [i for i, s in enumerate(splits) if s == name]
        return [step_scores[i] for i in idx], [labels[i] for i in idx]

    dev, test = part("dev"), part("test")
    if not dev[0] or not test[0]:
        raise ValueError(f"the ProcessBench-style set needs dev and test rows, got splits {sorted(set(splits))}")
    tau = choose_threshold(*dev)  # never sees test
    at_tau, at_half = f1_at(*test, tau), f1_at(*test, 0.5)
    return {"tau": tau, "f1": at_tau.f1, "acc_err": at_tau.acc_err, "acc_cor": at_tau.acc_cor,
            "f1_tau05": at_half.f1, "dev_f1": f1_at(*dev, tau).f1, "n_test": at_tau.n_err + at_tau.n_cor}


def split_f1(frame: pl.DataFrame, step_scores: list[list[float]], tau: float) -> pl.DataFrame:
    """Per-split F1 at one τ (the real ProcessBench's four splits, say)."""
    rows = []
    for name in frame["split"].unique(maintain_order=True).to_list():
        idx = [i for i, s in enumerate(frame["split"]) if s == name]
        r = f1_at([step_scores[i] for i in idx], [frame["label"][i] for i in idx], tau)
        rows.append({"split": name, "n": len(idx), "acc_err": r.acc_err, "acc_cor": r.acc_cor, "f1": r.f1})
    return pl.DataFrame(rows)


def candidates(bon: pl.DataFrame, step_scores: list[list[float]]) -> list[list[Candidate]]:
    """Per problem, its candidates in generation order (bon: rollouts of the BoN set)."""
    scored = bon.with_columns(_scores=pl.Series(step_scores, dtype=pl.List(pl.Float64)))
    return [[Candidate(r["predicted_answer"], r["correct"], tuple(r["_scores"])) for r in g.sort("sample_index").iter_rows(named=True)]
            for g in scored.partition_by("problem_id", maintain_order=True)]


def pair_order(problems: list[list[Candidate]]) -> float:
    """Share of within-problem (correct, wrong) pairs whose min step scores are ordered right; ties count half."""
    good = total = 0.0
    for cands in problems:
        right = [response_score(c.step_scores, "min") for c in cands if c.correct]
        wrong = [response_score(c.step_scores, "min") for c in cands if not c.correct]
        for r in right:
            for w in wrong:
                total += 1
                good += 1.0 if r > w else 0.5 if r == w else 0.0
    return good / total if total else 0.0


def bon_scores(bon: pl.DataFrame, step_scores: list[list[float]]) -> dict:
    """Accuracy and standard error of every best-of-N method, the pair order, and greedy's accuracy."""
    problems = candidates(bon, step_scores)
    out = {}
    for m in BON_METHODS:
        r = best_of_n(problems, m)
        out[m], out[f"{m}_stderr"] = r.accuracy, r.stderr
    out["pair_order"] = pair_order(problems)
    out["greedy"] = float(bon.group_by("problem_id").agg(pl.col("greedy_correct").first())["greedy_correct"].mean())
    out["n_problems"] = len(problems)
    out["n"] = int(bon.group_by("problem_id").len()["len"].max())
    return out


def per_sample(frame: pl.DataFrame, step_scores: list[list[float]], tau: float | None = None) -> pl.DataFrame:
    """Every sample with its step scores (and, given τ, the first error they predict: ProcessBench's rule), so a
    benchmark can be recomputed outside the project; the frame keeps its own field names."""
    out = frame.with_columns(step_scores=pl.Series(step_scores, dtype=pl.List(pl.Float64)))
    if tau is not None:
        out = out.with_columns(prediction=pl.Series([predict_first_error(s, tau) for s in step_scores], dtype=pl.Int32),
                               tau=pl.lit(tau))
    return out


def sigmoid_rows(rows: list[list[float]]) -> list[list[float]]:
    """σ of every value (numerically stable both ways)."""
    import math

    return [[1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in row] for row in rows]


IMPLICIT_VARIANTS = (("ref", "r"), ("ref", "q"), ("noref", "r"), ("noref", "q"))  # algorithms.md §4.4


def implicit_scores(pb: pl.DataFrame, pb_values: tuple, bon: pl.DataFrame, bon_values: tuple, coef: float):
    """An implicit PRM on both benchmarks, from cumulative log-probs (θ's, ref's) per step of every sample.

    ProcessBench-style: step scores σ(Q_k) through `processbench_scores` (the other PRMs' rule). Best-of-N: the
    paper's default (w/ ref, step reward r_k, min) fills the usual columns, incl. the weighted vote on σ(min r_k);
    all four {w/, w/o ref} × {r_k, Q_k} min variants are added as `bon_<ref>_<r|q>`. Returns the row and the
    step scores behind it (ProcessBench σ(Q_k), best-of-N σ(r_k)) for the per-sample tables."""
    from prm_core.prm.implicit import implicit_rewards

    pb_scores = sigmoid_rows(implicit_rewards(pb_values[0], pb_values[1], coef)["q"])
    row = processbench_scores(pb, pb_scores)
    variants = {}
    for ref_name, kind in IMPLICIT_VARIANTS:
        values = implicit_rewards(bon_values[0], bon_values[1] if ref_name == "ref" else None, coef)[kind]
        variants[f"{ref_name}_{kind}"] = sigmoid_rows(values)
    row.update(bon_scores(bon, variants["ref_r"]))
    for name, scores in variants.items():
        row[f"bon_{name}"] = best_of_n(candidates(bon, scores), "prm_min").accuracy
    return row, pb_scores, variants["ref_r"]
