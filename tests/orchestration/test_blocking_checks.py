"""Blocking asset checks: each one's verdict on sound and broken data, and a failed one stops the run's downstream."""

import math

import dagster as dg
import polars as pl

from assets.common.resources import StorageResource
from assets.label_audit import audit_is_sound, label_audit
from assets.prm_model import loss_violations
from prm_core.evaluation.benchmark_sets import PB_SCHEMA, processbench_violations
from prm_core.labels.audit import audit_violations, cost_table, first_error_accuracy, step_confusion
from prm_core.labels.mc_estimates import AnnotationConfig, annotate
from prm_core.lineage.storage import write_parquet
from tests.support.labels import SPEC, D, scripted_set

# a/r0 correct, a/r1 first error at 2, b/r0 at 2, c/r0 at 0 (test_mc's case with known truth)
TRUTH = pl.DataFrame({"response_id": ["a/r0", "a/r1", "b/r0", "c/r0"], "first_error": [-1, 2, 2, 0]},
                     schema={"response_id": pl.String, "first_error": pl.Int32})
COSTS = {"vanilla": {"rollouts": 16, "tokens": 160}, "scan": {"rollouts": 4, "tokens": 40}}


def _labels() -> pl.DataFrame:
    engine, responses, sc = scripted_set()
    return pl.concat([annotate(m, D, engine, responses, sc, AnnotationConfig(), SPEC)[0] for m in COSTS])


def test_audit_violations_name_lost_responses_missing_methods_and_bad_rates():
    mc = _labels()
    fe, steps, ct = first_error_accuracy(mc, TRUTH), step_confusion(mc, TRUTH), cost_table(COSTS)
    assert audit_violations(mc, fe, steps, ct) == []
    lost = TRUTH.filter(pl.col("response_id") != "c/r0")  # no step truth for c/r0: the audit's join loses it
    problems = audit_violations(mc, first_error_accuracy(mc, lost), step_confusion(mc, lost), ct)
    assert problems == ["vanilla: the audit counts 3 responses, its labels 4", "vanilla: the audit counts 12 steps, its labels 16"]
    assert audit_violations(mc, fe, steps, ct.filter(pl.col("method") != "scan")) == ["scan: labels but no cost row"]
    doubled = fe.with_columns(under_rate=pl.col("under_rate") * 2)  # vanilla's `all` under-rate is 0.5: 1.0 stays in range
    assert [p.split(" for ")[0] for p in audit_violations(mc, doubled, steps, ct)] == [
        "under_rate outside [0, 1]", "first_error_acc + noise_ratio ≠ 1 or under + over ≠ noise"]
    assert audit_violations(mc.head(0), fe.head(0), steps.head(0), ct.head(0)) == []


def _processbench(n_err: int, n_cor: int) -> pl.DataFrame:
    rows = []
    for label, n in ((1, n_err), (-1, n_cor)):
        for i in range(n):
            rows.append((f"{label}-{i}", "policy", "q", "q\n", ["a", "b"], label == -1, label,
                         "dev" if i < round(n / 2) else "test"))
    return pl.DataFrame(rows, schema=PB_SCHEMA, orient="row")


def test_processbench_violations_allow_a_short_class_but_not_a_broken_set():
    assert processbench_violations(_processbench(3, 3), 3) == []
    assert processbench_violations(_processbench(3, 0), 3) == []  # a weak policy: all-correct short (a warning elsewhere)
    assert processbench_violations(_processbench(1, 3), 3) == []
    assert processbench_violations(_processbench(2, 1), 3) == [
        "classes {'erroneous': 2, 'all-correct': 1}: the fuller one must hold the 3 asked"]  # the oversampling fills one
    assert "the fuller one must hold the 3 asked" in processbench_violations(_processbench(4, 3), 3)[0]
    assert processbench_violations(_processbench(0, 0), 3) == ["no responses"]
    past_the_end = _processbench(3, 3).with_columns(label=pl.when(pl.col("label") == 1).then(2).otherwise(-1))
    assert processbench_violations(past_the_end, 3)[0].startswith("3 labels outside [-1, steps)")
    wrong_answer = _processbench(3, 3).with_columns(final_answer_correct=pl.lit(False))
    assert processbench_violations(wrong_answer, 3)[0].startswith("3 labels outside [-1, steps) or all-correct")
    all_dev = _processbench(3, 3).with_columns(split=pl.lit("dev"))
    assert processbench_violations(all_dev, 3)[0] == "erroneous: 3 of 3 in dev, 0 elsewhere; asked 50% dev, rest test"
    assert processbench_violations(pl.concat([_processbench(3, 3)] * 2), 3)[0] == "6 repeated ids"


def test_loss_violations_name_each_label_set_without_a_finite_loss():
    assert loss_violations({"vanilla": {"loss_first": 0.69, "loss_last": 0.4}}) == []
    bad = {"vanilla": {"loss_first": 0.69, "loss_last": 0.4}, "scan": {"loss_first": 0.69, "loss_last": math.nan},
           "oracle": {"loss_first": math.inf, "loss_last": 0.1}, "old": {}}
    assert loss_violations(bad) == ["scan: loss_first 0.69, loss_last nan", "oracle: loss_first inf, loss_last 0.1",
                                    "old: loss_first None, loss_last None"]


@dg.asset(deps=["label_audit"])
def reads_the_audit() -> None:
    """Stands in for what reads the audit (run_summary, in another run)."""


def _materialize_audit(tmp_path, truth: pl.DataFrame):
    storage = StorageResource(base_dir=str(tmp_path / "data"))
    mc = _labels().with_columns(shard=pl.lit("s0"))
    costs = pl.DataFrame([{"method": m, **c} for m, c in COSTS.items()])
    for asset, df in (("mc_estimates", mc), ("step_truth", truth), ("mc_costs", costs),
                      ("self_confidence", pl.DataFrame({"tokens": [0]}))):
        write_parquet(df, storage.table(asset, "s0"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", ["s0"])
        result = dg.materialize([label_audit, audit_is_sound, reads_the_audit], instance=instance,
                                resources={"storage": storage}, raise_on_error=False)
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    return result.success, materialized, checks


def test_a_failed_blocking_check_stops_the_downstream_asset_of_its_run(tmp_path):
    ok, materialized, checks = _materialize_audit(tmp_path / "sound", TRUTH)
    assert ok and checks == {"audit_is_sound": True} and materialized == {"label_audit", "reads_the_audit"}
    lost = TRUTH.filter(pl.col("response_id") != "c/r0")  # the audit is written, but lost a response
    ok, materialized, checks = _materialize_audit(tmp_path / "broken", lost)
    assert not ok and checks == {"audit_is_sound": False} and materialized == {"label_audit"}
