"""Audit of MC labels against the exact step truth (the arith testbed's reason to exist).

Per method, on the responses it labels:
* first-error accuracy: predicted t_e equals the true first error (-1 = none);
* under-estimation: the predicted error comes earlier than the true one (-1 counts as "after the last step");
  over-estimation: later; noise ratio: either;
* per-step confusion of the hard label (prefix judged correct) against prefix truth, with the step-level
  under-estimation (judged wrong, truly correct) and over-estimation (judged correct, truly wrong) rates;
all bucketed by the policy's self-confidence — SCAN's preliminary study.
"""

from __future__ import annotations

import polars as pl

from prm_core.labels.self_confidence import sc_bucket


def response_predictions(mc: pl.DataFrame) -> pl.DataFrame:
    """One row per (method, response): its predicted first error; SCAN's dropped responses flagged."""
    per = mc.group_by("method", "response_id", maintain_order=True).agg(
        pl.first("problem_id", "n_steps", "response_correct", "self_confidence", "predicted_error"),
        rollouts=pl.col("rollouts").sum(),
        rollout_tokens=pl.col("rollout_tokens").sum(),
    )
    is_scan = pl.col("method") != "vanilla"
    return per.with_columns(
        dropped=is_scan & ~pl.col("response_correct") & (pl.col("predicted_error") < 0),
        predicted_error=pl.when(is_scan & pl.col("response_correct")).then(-1).otherwise(pl.col("predicted_error")),
    )


def step_predictions(mc: pl.DataFrame) -> pl.DataFrame:
    """The hard label (prefix judged correct) of every step a method labels."""
    preds = response_predictions(mc).select("method", "response_id", "dropped", pred=pl.col("predicted_error"))
    steps = mc.select("method", "response_id", "step", "mc_value").join(preds, on=["method", "response_id"])
    scan_kept = (pl.col("pred") < 0) | (pl.col("step") <= pl.col("pred"))
    return (
        steps.filter(~pl.col("dropped") & ((pl.col("method") == "vanilla") | scan_kept))
        .with_columns(
            judged_correct=pl.when(pl.col("method") == "vanilla")
            .then(pl.col("mc_value") > 0)
            .otherwise((pl.col("pred") < 0) | (pl.col("step") < pl.col("pred")))
        )
        .select("method", "response_id", "step", "judged_correct")
    )


def _with_truth(df: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    return df.join(truth.select("response_id", "first_error"), on="response_id", how="inner")


def first_error_accuracy(mc: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """First-error accuracy, under/over-estimation and noise ratio per method and SC bucket (and `all`)."""
    r = _with_truth(response_predictions(mc).filter(~pl.col("dropped")), truth)
    big = pl.col("n_steps") + 1  # "no error" sorts after every step
    pred = pl.when(pl.col("predicted_error") < 0).then(big).otherwise(pl.col("predicted_error"))
    true = pl.when(pl.col("first_error") < 0).then(big).otherwise(pl.col("first_error"))
    r = r.with_columns(exact=pred == true, under=pred < true, over=pred > true, bucket=sc_bucket(pl.col("self_confidence")))
    aggs = [
        pl.len().alias("responses"),
        pl.col("exact").mean().alias("first_error_acc"),
        pl.col("under").mean().alias("under_rate"),
        pl.col("over").mean().alias("over_rate"),
        (~pl.col("exact")).mean().alias("noise_ratio"),
    ]
    by_bucket = r.group_by("method", "bucket").agg(aggs)
    overall = r.group_by("method").agg(aggs).with_columns(bucket=pl.lit("all"))
    order = {"all": 0, "low": 1, "mid": 2, "high": 3}
    return (
        pl.concat([overall.select(by_bucket.columns), by_bucket])
        .with_columns(o=pl.col("bucket").replace_strict(order, default=9))
        .sort("method", "o")
        .drop("o")
    )


def step_confusion(mc: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Hard step labels against prefix truth, per method and SC bucket (and `all`)."""
    s = _with_truth(step_predictions(mc), truth)
    s = s.with_columns(truly_correct=(pl.col("first_error") < 0) | (pl.col("step") < pl.col("first_error")))
    sc = mc.group_by("response_id").agg(pl.first("self_confidence"))
    s = s.join(sc, on="response_id").with_columns(bucket=sc_bucket(pl.col("self_confidence")))
    aggs = [
        (pl.col("judged_correct") & pl.col("truly_correct")).sum().alias("tp"),
        (pl.col("judged_correct") & ~pl.col("truly_correct")).sum().alias("fp"),
        (~pl.col("judged_correct") & ~pl.col("truly_correct")).sum().alias("tn"),
        (~pl.col("judged_correct") & pl.col("truly_correct")).sum().alias("fn"),
    ]
    rates = [
        ((pl.col("tp") + pl.col("tn")) / (pl.col("tp") + pl.col("fp") + pl.col("tn") + pl.col("fn"))).alias("step_acc"),
        (pl.col("fn") / (pl.col("tp") + pl.col("fn"))).alias("step_under_rate"),
        (pl.col("fp") / (pl.col("fp") + pl.col("tn"))).alias("step_over_rate"),
    ]
    by_bucket = s.group_by("method", "bucket").agg(aggs)
    overall = s.group_by("method").agg(aggs).with_columns(bucket=pl.lit("all"))
    return pl.concat([overall.select(by_bucket.columns), by_bucket]).with_columns(rates).sort("method", "bucket")


def cost_table(costs: dict[str, dict], sc_tokens: int = 0) -> pl.DataFrame:
    """Rollouts and tokens per method (the reproducible cost; seconds are run info), with each method's ratio to vanilla.

    All-in (algorithms.md §2.4): every token a method generates beyond the shared N responses — its rollouts, and
    for SCAN also the tokens sampled for self-confidence alone (`sc_tokens`, 0 when SC comes from the responses).
    """
    base = costs.get("vanilla", {}).get("tokens", 0)
    rows = []
    for method, c in costs.items():
        tokens = int(c.get("tokens", 0))
        all_in = tokens + (sc_tokens if method != "vanilla" else 0)
        rows.append({
            "method": method,
            "rollouts": int(c.get("rollouts", 0)),
            "tokens": tokens,
            "all_in_tokens": all_in,
            "token_ratio_vs_vanilla": tokens / base if base else None,
            "all_in_ratio_vs_vanilla": all_in / base if base else None,
            "rollout_ratio_vs_vanilla": c.get("rollouts", 0) / costs["vanilla"]["rollouts"]
            if costs.get("vanilla", {}).get("rollouts") else None,
        })
    return pl.DataFrame(rows)


def all_in_costs(costs: pl.DataFrame, sc_tokens: int) -> pl.DataFrame:
    """`cost_table` of every chunk's cost (the `mc_costs` rows), summed per method."""
    per_method = costs.group_by("method", maintain_order=True).agg(pl.col("rollouts", "tokens").sum())
    return cost_table({r["method"]: r for r in per_method.to_dicts()}, sc_tokens)


def cost_summary(costs: pl.DataFrame, sc_tokens: int, seconds: dict[str, float]) -> tuple[dict, pl.DataFrame]:
    """The MC stage's summary keys from every chunk's cost (`mc.<method>.rollouts|tokens|grade_timeouts|seconds`, and
    SCAN's token ratios to vanilla: rollouts alone, and all-in with SC's own samples) and the all-in cost table."""
    per_method = costs.group_by("method", maintain_order=True).agg(pl.col("rollouts", "tokens", "grade_timeouts").sum())
    summary = {f"mc.{r['method']}.{k}": r[k] for r in per_method.to_dicts() for k in ("rollouts", "tokens", "grade_timeouts")}
    summary |= {f"mc.{m}.seconds": s for m, s in seconds.items()}
    all_in = all_in_costs(costs, sc_tokens)
    ratios = {r["method"]: r for r in all_in.to_dicts()}
    if ratios.get("vanilla", {}).get("tokens"):  # the contract keys: rollouts alone, and all-in (+ SC's own samples)
        for method, prefix in (("scan", "mc.token_ratio"), ("scan_binary", "mc.binary_token_ratio")):
            if method in ratios:
                summary[prefix] = ratios[method]["token_ratio_vs_vanilla"]
                summary[f"{prefix}_all_in"] = ratios[method]["all_in_ratio_vs_vanilla"]
    return summary, all_in


def same_responses_accuracy(mc: pl.DataFrame, truth: pl.DataFrame, reference: str, on: str) -> float | None:
    """`reference`'s first-error accuracy restricted to the responses that method `on` labels."""
    fe = first_error_accuracy(mc.filter(pl.col("method") == reference).join(
        mc.filter(pl.col("method") == on).select("response_id").unique(), on="response_id"), truth)
    row = fe.filter(pl.col("bucket") == "all")
    return float(row["first_error_acc"][0]) if row.height else None


FE_RATES = ("first_error_acc", "under_rate", "over_rate", "noise_ratio")
STEP_RATES = ("step_acc", "step_under_rate", "step_over_rate")


def audit_violations(mc: pl.DataFrame, fe: pl.DataFrame, steps: pl.DataFrame, costs: pl.DataFrame) -> list[str]:
    """What is wrong with an audit (`first_error_accuracy`, `step_confusion`, `cost_table`) of the labels `mc`: a
    method without a cost row, a response or step a method labels that the audit lost (e.g. no step truth for it),
    buckets that do not add up to `all`, a rate outside [0, 1], acc + noise ≠ 1 or under + over ≠ noise. Empty: sound."""
    if mc.is_empty():
        return [] if fe.is_empty() and steps.is_empty() else ["an audit of no labels has rows"]
    methods = mc["method"].unique(maintain_order=True).to_list()
    problems = [f"{m}: labels but no cost row" for m in methods if m not in costs.get_column("method", default=pl.Series()).to_list()]
    kept = response_predictions(mc).filter(~pl.col("dropped")).group_by("method").len()
    judged = step_predictions(mc).group_by("method").len()
    steps = steps.with_columns(n=pl.sum_horizontal("tp", "fp", "tn", "fn")) if steps.height else steps.with_columns(n=pl.lit(0))
    problems += _counts(fe, "responses", dict(kept.iter_rows()), methods, "responses")
    problems += _counts(steps, "n", dict(judged.iter_rows()), methods, "steps")
    for df, rates, undefined in ((fe, FE_RATES, False), (steps, STEP_RATES, True)):  # a step rate of no steps: NaN
        for c in rates:
            rate = pl.col(c).fill_nan(None)  # polars sorts NaN above 1
            bad = df.filter((pl.col(c).is_nan() & (not undefined)) | (rate < 0) | (rate > 1)) if df.height else df
            problems += [f"{c} outside [0, 1] for {bad.select('method', 'bucket').rows()}"] if bad.height else []
    off = fe.filter(((pl.col("first_error_acc") + pl.col("noise_ratio") - 1).abs() > 1e-9)
                    | ((pl.col("under_rate") + pl.col("over_rate") - pl.col("noise_ratio")).abs() > 1e-9)) if fe.height else fe
    if off.height:
        problems.append(f"first_error_acc + noise_ratio ≠ 1 or under + over ≠ noise for {off.select('method', 'bucket').rows()}")
    return problems


def _counts(df: pl.DataFrame, col: str, expected: dict, methods: list, what: str) -> list[str]:
    """Each method's `all` count equals what its labels hold and the sum over its self-confidence buckets."""
    problems = []
    for m in sorted(set(methods) | set(df.get_column("method", default=pl.Series()).to_list())):
        rows = df.filter(pl.col("method") == m)
        overall = int(rows.filter(pl.col("bucket") == "all")[col].sum())
        if overall != expected.get(m, 0):
            problems.append(f"{m}: the audit counts {overall} {what}, its labels {expected.get(m, 0)}")
        if int(rows.filter(pl.col("bucket") != "all")[col].sum()) != overall:
            problems.append(f"{m}: {what} per self-confidence bucket do not add up to the {overall} of `all`")
    return problems
