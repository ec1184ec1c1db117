"""Benchmarking a PRM: ProcessBench F1 on a dev/test set (official rule) and best-of-N (algorithms.md §1.1, §1.4).

The threshold is chosen on the dev split only and applied to test; τ = 0.5 is reported too. Best-of-N adds the
within-problem pair order (testbed-probe.md §9): the share of (correct, wrong) candidate pairs of one problem
whose min step scores are ordered right (ties count half) — what a verifier must get right, unlike global AUC.

`score_prm` runs one PRM (any `Scorer`) on every benchmark given, with the real ProcessBench and PRMBench;
`implicit_prm_scores` scores implicit PRMs against their reference (its log-probs computed once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from prm_core.evaluation.best_of_n import Candidate, best_of_n, response_score
from prm_core.evaluation.prmbench import prmscore
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


def set_samples(pb: pl.DataFrame, pb_scores: list[list[float]], bon: pl.DataFrame, bon_steps: list[list[float]],
                tau: float) -> dict[str, pl.DataFrame]:
    """The per-sample tables of one PRM on the ProcessBench-style set (with τ's predictions) and on best-of-N."""
    return {"processbench": per_sample(pb, pb_scores, tau), "bon": per_sample(bon, bon_steps)}


def set_scores(pb: pl.DataFrame, pb_scores: list[list[float]], bon: pl.DataFrame,
               bon_steps: list[list[float]]) -> tuple[dict, dict[str, pl.DataFrame]]:
    """A PRM's step scores on both shared sets as its row (F1 at dev τ, best-of-N) and its per-sample tables."""
    row = {**processbench_scores(pb, pb_scores), **bon_scores(bon, bon_steps)}
    return row, set_samples(pb, pb_scores, bon, bon_steps, row["tau"])


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


Scorer = Callable[[list[str], list[list[str]]], list[list[float]]]  # (prompts, steps) -> a score per step


@dataclass
class PRMScores:
    """One PRM on the benchmarks: its row of the comparison table, its per-sample tables (by benchmark), the real
    ProcessBench's per-split F1 (at the GSM8K τ and at 0.5) and PRMBench's PRMScore, and its summary keys."""

    row: dict
    samples: dict[str, pl.DataFrame] = field(default_factory=dict)
    real: pl.DataFrame | None = None
    prmbench: pl.DataFrame | None = None
    summary: dict = field(default_factory=dict)


def discriminative_scorer(path, separator: str, batch_size: int, shared: dict | None = None) -> Scorer:
    """A trained discriminative PRM (`prm_model`'s folder) as a scorer; PRMs given one `shared` dict (backbone key ->
    head inputs) compute the head inputs of their common backbone once (`score_steps`)."""
    from transformers import AutoTokenizer

    from prm_core.lineage.storage import local_copy
    from prm_core.prm.discriminative import backbone_key, load_prm, score_steps

    model, tok = load_prm(path), AutoTokenizer.from_pretrained(local_copy(path))
    rows = None if shared is None else shared.setdefault(backbone_key(model), {})  # hashed once per PRM, not per call
    return lambda prompts, steps: score_steps(model, tok, prompts, steps, separator, batch_size, shared=rows)


def implicit_scorer(policy, local, info: dict, batch_size: int) -> Scorer:
    """An implicit PRM (its folder `local`, what `implicit_prm` recorded) against its reference `policy` as a scorer:
    σ(Q_k) per step, the score its ProcessBench-style F1 reads (`implicit_scores`), for the real benchmarks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.prm.implicit import implicit_rewards, step_values

    tok = AutoTokenizer.from_pretrained(local)
    theta, ref = AutoModelForCausalLM.from_pretrained(local), AutoModelForCausalLM.from_pretrained(policy)

    def score(prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        values = [step_values(m, tok, prompts, steps, info["separator"], batch_size) for m in (theta, ref)]
        return sigmoid_rows(implicit_rewards(values[0], values[1], info["coef"])["q"])

    return score


def score_prm(prm: str, score: Scorer, pb: pl.DataFrame | None = None, bon: pl.DataFrame | None = None,
              real: pl.DataFrame | None = None, prmbench: pl.DataFrame | None = None) -> PRMScores:
    """A PRM on every benchmark given: the ProcessBench-style set (τ from dev) with best-of-N (both or neither), the
    real ProcessBench (official: τ chosen on its GSM8K split; and τ = 0.5) and PRMBench (PRMScore)."""
    out = PRMScores({"prm": prm})
    row, summary = out.row, out.summary
    if pb is not None:
        pb_scores, bon_steps = score(pb["prompt"].to_list(), pb["steps"].to_list()), score(bon["prompt"].to_list(), bon["steps"].to_list())
        scored, samples = set_scores(pb, pb_scores, bon, bon_steps)
        row.update(scored)
        out.samples.update(samples)
    if real is not None:
        real_scores = score(real["prompt"].to_list(), real["steps"].to_list())
        gsm = [i for i, s in enumerate(real["split"]) if s == "gsm8k"] or list(range(real.height))
        tau = choose_threshold([real_scores[i] for i in gsm], [real["label"][i] for i in gsm])  # official: τ on GSM8K
        per = [split_f1(real, real_scores, at).with_columns(prm=pl.lit(prm), threshold=pl.lit(name), tau=pl.lit(at))
               for name, at in (("gsm8k_tau", tau), ("tau05", 0.5))]
        out.real = pl.concat(per)
        out.samples["processbench_real"] = per_sample(real, real_scores, tau)
        row["real_avg_f1"], row["real_avg_f1_tau05"] = float(per[0]["f1"].mean()), float(per[1]["f1"].mean())
        summary[f"processbench.real.avg_f1.{prm}"] = row["real_avg_f1"]
        summary["processbench.real.rows"] = real.height
    if prmbench is not None:
        pm_scores = score(prmbench["prompt"].to_list(), prmbench["steps"].to_list())
        out.samples["prmbench"] = per_sample(prmbench, pm_scores, 0.5)
        out.prmbench = prmscore(prmbench, pm_scores).with_columns(prm=pl.lit(prm))
        row["prmbench_prmscore"] = float(out.prmbench.filter(pl.col("level") == "overall")["prmscore"][0])
        summary[f"prmbench.prmscore.{prm}"] = row["prmbench_prmscore"]
        summary["prmbench.rows"] = prmbench.height
        summary["prmbench.out_of_range_rows"] = int((prmbench["out_of_range_errors"].list.len() > 0).sum())
    if pb is not None:
        summary.update({f"prm.{prm}.{k}": row[k] for k in ("f1", "f1_tau05", "tau", "pair_order")})
        summary.update({f"bon.{k}.{prm}": row[k] for k in ("prm_min", "prm_min_vote", "prm_last")})
    return out


def implicit_prm_scores(policy, models: list[tuple[str, object, dict]], pb: pl.DataFrame, bon: pl.DataFrame,
                        batch_size: int) -> list[PRMScores]:
    """Implicit PRMs (name, local folder, what `implicit_prm` recorded) trained against the reference `policy` on both
    benchmarks (`implicit_scores`); the reference's cumulative log-probs are computed once for all of them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.prm.implicit import step_values

    out, ref_values = [], None
    for name, local, info in models:
        tok = AutoTokenizer.from_pretrained(local)

        def values(model):
            return tuple(step_values(model, tok, f["prompt"].to_list(), f["steps"].to_list(), info["separator"], batch_size)
                         for f in (pb, bon))

        if ref_values is None:
            ref_values = values(AutoModelForCausalLM.from_pretrained(policy))
        theta = values(AutoModelForCausalLM.from_pretrained(local))
        row, pb_scores, bon_steps = implicit_scores(pb, (theta[0], ref_values[0]), bon, (theta[1], ref_values[1]), info["coef"])
        row.update(prm=name, flops=info["flops"], generated_tokens=info.get("response_tokens"),
                   responses_per_problem=info["responses_per_problem"])
        key = name.replace("implicit_", "implicit.")
        summary = {f"{key}.f1": row["f1"], f"{key}.f1_tau05": row["f1_tau05"], f"{key}.tau": row["tau"],
                   f"{key}.bon": row["bon_ref_r"], f"{key}.bon_vote": row["prm_min_vote"], f"{key}.cost_flops": row["flops"],
                   **{f"{key}.bon_{v}": row[f"bon_{v}"] for v in ("ref_q", "noref_r", "noref_q")}}
        out.append(PRMScores(row, set_samples(pb, pb_scores, bon, bon_steps, row["tau"]),
                             summary=summary))
    return out


def comparison_summary(rows: list[dict]) -> dict:
    """Best-of-N's baselines (majority, pass@N, pass@1, greedy; the same for every PRM: the first row's), its largest
    standard error, and SCAN's F1 against the oracle's and vanilla's."""
    first = rows[0]
    out = {"bon.majority": first["majority"], "bon.pass_at_n": first["pass_at_n"], "bon.pass_at_1": first["first"],
           "bon.greedy": first["greedy"], "bon.problems": first["n_problems"], "bon.n": first["n"],
           "bon.stderr": max(r.get("prm_min_stderr") or 0.0 for r in rows)}
    by = {r["prm"]: r for r in rows}
    if "scan" in by and "oracle" in by and by["oracle"]["f1"] > 0:
        out["prm.scan_over_oracle_f1"] = by["scan"]["f1"] / by["oracle"]["f1"]
    if "scan" in by and "vanilla" in by:
        out["prm.scan_minus_vanilla_f1"] = by["scan"]["f1"] - by["vanilla"]["f1"]
    return out
