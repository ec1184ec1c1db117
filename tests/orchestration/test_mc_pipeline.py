"""The MC stages in Dagster: resume after a crash gives the same table as an uninterrupted run."""

import dagster as dg
import polars as pl
import pytest
import torch
from pydantic import PrivateAttr

from assets.common.partitions import shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from orchestration.cli import RANGE_END, RANGE_START
from tests.support.pipeline import ALL_ASSETS, CONFIG, KEYS, SELECTION, materialize_pipeline


class CrashingGenerator(GeneratorResource):
    """The real engine, killed after `calls_before_crash` generate calls (a process dying mid-asset)."""

    calls_before_crash: int = 3
    _calls: int = PrivateAttr(default=0)

    def get(self, model_dir):
        engine = super().get(model_dir)
        outer = self

        class Dying:
            name, stats = engine.name, engine.stats

            def generate(self, prompts, spec):
                outer._calls += 1
                if outer._calls > outer.calls_before_crash:
                    raise RuntimeError("simulated crash")
                return engine.generate(prompts, spec)

            def close(self):
                engine.close()

        return Dying()


def _run(data, generator, selection=SELECTION):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        return dg.materialize(
            ALL_ASSETS, instance=instance, selection=selection, raise_on_error=False,
            resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(), "generator": generator,
                       "tracking": TrackingResource(root=str(data.parent))},
            run_config={"ops": {k: v for k, v in CONFIG["ops"].items() if k in selection}},
            tags={RANGE_START: KEYS[0], RANGE_END: KEYS[-1]},
        )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    data = tmp_path_factory.mktemp("straight") / "data"
    result = _run(data, GeneratorResource(engine="transformers"))
    assert result.success
    return data, result


def test_mc_stages_materialize_with_checks_and_audit(uninterrupted):
    data, result = uninterrupted
    mc = pl.read_parquet(data / "mc_estimates" / "arith-0000.parquet")
    assert set(mc["method"]) == {"vanilla", "scan", "scan_binary"}
    assert all(c.passed for c in result.get_asset_check_evaluations()), [
        (c.check_name, c.metadata) for c in result.get_asset_check_evaluations() if not c.passed]
    labels = pl.read_parquet(data / "denoised_labels" / "arith-0000.parquet")
    assert labels.select(pl.col("labels").list.min().min()).item() >= 0
    import json

    summary = json.loads((data / "reports" / "summary.json").read_text())
    for key in ("mc.vanilla.tokens", "mc.scan.tokens", "mc.scan_binary.tokens", "mc.token_ratio",
                "labels.vanilla.first_error_acc", "labels.scan.first_error_acc",
                "labels.vanilla.noise_ratio", "labels.scan.noise_ratio", "labels.scan.train_negatives"):
        assert key in summary
    assert summary["mc.vanilla.tokens"] == mc.filter(pl.col("method") == "vanilla")["rollout_tokens"].sum()
    # SC comes from the rollouts themselves: no tokens of its own, so the all-in ratio is the rollout ratio
    assert summary["sc.tokens"] == 0 and summary["sc.source"] == "rollouts"
    assert summary["mc.token_ratio_all_in"] == summary["mc.token_ratio"]
    # every method labels the same responses: all N of every problem
    assert mc.filter(pl.col("method") == "vanilla")["response_id"].n_unique() == 12
    for method in [*labels["method"].unique(), "oracle"]:  # (SCAN balances its nothing-correct tiny set to no rows)
        assert (data / "exports" / method / "trl.jsonl").exists() and (data / "exports" / method / "hf" / "README.md").exists()


def test_resume_after_a_crash_gives_the_uninterrupted_table(uninterrupted, tmp_path):
    straight, _ = uninterrupted
    data = tmp_path / "data"
    upstream = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence"]
    assert _run(data, GeneratorResource(engine="transformers"), selection=upstream).success
    crashed = _run(data, CrashingGenerator(engine="transformers", calls_before_crash=4), selection=["mc_estimates"])
    assert not crashed.success
    done_before = sorted(p.name for p in (data / "mc_estimates_chunks" / "arith-0000").glob("*-0*.parquet") if ".cost" not in p.name)
    assert done_before and not (data / "mc_estimates" / "arith-0000.parquet").exists()
    resumed = _run(data, GeneratorResource(engine="transformers"), selection=["mc_estimates"])
    assert resumed.success
    md = {k: v.value for k, v in resumed.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert md["chunks_reused"] == len(done_before) > 0
    a = pl.read_parquet(straight / "mc_estimates" / "arith-0000.parquet")
    b = pl.read_parquet(data / "mc_estimates" / "arith-0000.parquet")
    assert a.equals(b)


@pytest.fixture(scope="module")
def full_pipeline(tmp_path_factory):
    """The three stages of `prm run` on the tiny config, materialized once for the module: (data dir, results)."""
    data = tmp_path_factory.mktemp("full") / "data"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        return data, materialize_pipeline(instance, data, KEYS)


def test_prm_stage_trains_three_prms_scores_them_and_exports(full_pipeline):
    """The label-set run after the shard run: corpora, three PRMs (MLflow-tracked), benchmark scores, exports."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    from assets.common.models import training_info
    from prm_core.lineage.summary import read_summary

    data, (shard, _, prm) = full_pipeline
    # the tiny policy's SCAN finds no error with K=2, so its corpus is empty and its PRM skipped (a warning says so)
    assert pl.read_parquet(data / "filtered_corpus" / "scan.parquet").is_empty()
    corpus = pl.read_parquet(data / "filtered_corpus" / "vanilla.parquet")
    assert "label" in set(corpus["source"]) and (corpus["steps"].list.len() == corpus["targets"].list.len()).all()
    summary = read_summary(data)  # summary.json with reports/run_info.json (run.seconds)
    for key in ("prm.vanilla.f1", "prm.oracle.f1", "prm.vanilla.f1_tau05", "bon.majority", "bon.prm_min.oracle",
                "bon.prm_min.vanilla", "bon.pass_at_n", "run.seconds"):
        assert 0.0 <= summary[key] <= (1.0 if key != "run.seconds" else 1e6), key
    scores = pl.read_parquet(data / "reports" / "benchmark_scores.parquet")
    assert {"oracle", "vanilla"} <= set(scores["prm"]) and "scan" not in set(scores["prm"])
    # the comparison's all-in cost: the oracle generated only the responses, vanilla its MC rollouts on top of them
    tokens = dict(scores.select("prm", "generated_tokens").iter_rows())
    assert tokens["vanilla"] > tokens["oracle"] == pl.read_parquet(data / "rollouts" / "arith-0000.parquet")["num_tokens"].sum()
    for label_set in ("oracle", "vanilla"):  # per-sample tables: ProcessBench's fields + step scores + prediction
        per = pl.read_parquet(data / "reports" / "per_sample" / "processbench" / f"{label_set}.parquet")
        assert {"id", "problem", "steps", "label", "step_scores", "prediction", "tau"} <= set(per.columns)
        assert (per["steps"].list.len() == per["step_scores"].list.len()).all()
        assert (data / "reports" / "per_sample" / "bon" / f"{label_set}.parquet").exists()
    export = data / "prm_exports" / "vanilla"
    assert "## Metrics" in (export / "README.md").read_text()
    model = AutoModelForTokenClassification.from_pretrained(export, trust_remote_code=True)
    assert model.config.num_labels == 1 and AutoTokenizer.from_pretrained(export, trust_remote_code=True)
    training = training_info(export)  # MLflow's run and version: its run_info.json
    import mlflow

    mlflow.set_tracking_uri(training["mlflow_uri"])
    run = mlflow.get_run(training["mlflow_run_id"])
    assert "f1" in run.data.metrics and run.data.params["label_set"] == "vanilla"
    assert str(mlflow.MlflowClient().get_model_version_by_alias("prm-foundry-prm-vanilla", "current").version) == training["mlflow_version"]
    md = {k: v.value for k, v in [m for m in prm.get_asset_materialization_events()
                                  if m.asset_key == dg.AssetKey("benchmark_scores")][-1].materialization.metadata.items()}
    assert "comparison" in md and "comparison_plot" in md
    # the implicit PRMs (CE always trains; DPO needs a question with both outcomes) join the same comparison
    assert {"implicit_ce", "implicit_ce_m1"} <= set(scores["prm"]) and "implicit_ce_responses_per_problem" in md
    for key in ("implicit.ce.f1", "implicit.ce.bon", "implicit.cost_flops", "cost_flops.vanilla", "cost_flops.oracle"):
        assert summary[key] >= 0, key
    card = (data / "models" / "implicit" / "ce" / "README.md").read_text()
    assert "Q_k = coef" in card and AutoModelForCausalLM.from_pretrained(data / "models" / "implicit" / "ce")
    assert str(mlflow.MlflowClient().get_model_version_by_alias("prm-foundry-implicit-ce", "current").version)
    # ActPRM ran in the shard stage against full data and random; its rows join the comparison
    for key in ("actprm.f1", "actprm.labels_used", "actprm.label_fraction", "actprm.full_data_f1", "actprm.random_f1",
                "actprm.random_f1_se", "actprm.bon", "actprm.judge_tokens", "actprm.mc_judge.tokens",
                "actprm.filtered_pool.kept_fraction", "actprm.filtered_pool.f1"):
        assert key in summary, key
    assert {"actprm", "actprm_full_data", "actprm_random"} <= set(scores["prm"])
    # ActPRM's all-in cost: the responses and its (exact) judge's nothing; FLOPs with the backbone's pool forward
    assert tokens["actprm"] == tokens["actprm_random"] == tokens["oracle"]
    flops = dict(scores.select("prm", "flops").iter_rows())
    assert flops["actprm"] > 0 and summary["cost_flops.actprm"] == flops["actprm"]
    selection = pl.read_parquet(data / "reports" / "actprm_selection.parquet")
    assert selection.height == 12 and {"aleatoric", "epistemic", "judge_first_error", "true_first_error"} <= set(selection.columns)
    from prm_core.prm.ensemble import EnsembleHeads

    checks = {c.check_name: c.passed for c in shard.get_asset_check_evaluations()}
    assert checks["judged_only_when_selected"]  # `actprm_selection` published the table and checked it
    heads = EnsembleHeads.from_pretrained(data / "models" / "actprm")
    assert heads.config.num_heads == 3 and torch.isfinite(heads.flat()).all()
    assert summary["actprm.filtered_pool.responses"] == 8 and (data / "models" / "actprm_final" / "model.safetensors").exists()


def released_files(data) -> dict:
    """Every file under the released folders (orchestration.release.RELEASED) by its path in the data dir, but the
    run records (run_info.json files, the summary): timings, run ids and paths live there, by design different."""
    from orchestration.release import RELEASED
    from prm_core.lineage.run_info import is_run_record

    out = {}
    for folder in RELEASED:
        base = data / folder
        for f in [base] if base.is_file() else sorted(base.rglob("*")) if base.exists() else []:
            if f.is_file() and not is_run_record(f.relative_to(data).as_posix()):
                out[f.relative_to(data).as_posix()] = f
    return out


def test_two_same_seed_runs_release_byte_identical_files(full_pipeline, tmp_path):
    """A second run into another data dir (other absolute paths, another MLflow store) writes the same bytes."""

    from prm_core.lineage.summary import is_timing_key, read_summary

    first, _ = full_pipeline
    second = tmp_path / "data"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        materialize_pipeline(instance, second, KEYS)
    a, b = released_files(first), released_files(second)
    assert sorted(a) == sorted(b) and len(a) > 50
    differ = [p for p in sorted(a) if a[p].read_bytes() != b[p].read_bytes()]
    assert not differ, f"released files that differ between two same-seed runs: {differ}"
    # what does differ is kept in run records: the summary's timing keys (a contract) and run_info.json files
    volatile = {"run.seconds", "run.id", "rollouts.tokens_per_s", "mc.vanilla.seconds", "mc.scan.seconds"}
    assert volatile <= set(read_summary(second)) and read_summary(first)["run.id"] != read_summary(second)["run.id"]
    timeless = {k: v for k, v in read_summary(first).items() if not is_timing_key(k)}  # what a release protects
    assert timeless == {k: v for k, v in read_summary(second).items() if k in timeless}
    for folder in ("models/prm/vanilla", "prm_exports/vanilla", "models/prm_backbone", "mc_costs"):
        assert (second / folder / "run_info.json").exists(), folder


def test_the_compare_job_puts_every_method_on_one_flop_axis(full_pipeline):
    """`method_frontier` (the compare job, after the others: it adds reports) on the tiny run: each method at budgets
    of vanilla MC's cost on 1 and 2 problems, what each bought, paired comparisons, summary keys, table and plot."""
    from prm_core.compare.frontier import METHODS
    from prm_core.lineage.summary import read_summary

    data, _ = full_pipeline
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        result = dg.materialize(ALL_ASSETS, instance=instance, selection=["method_frontier"],
                                resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(),
                                           "generator": GeneratorResource(engine="transformers"),
                                           "tracking": TrackingResource(root=str(data.parent))},
                                run_config={"ops": {"method_frontier": {"config": {
                                    "budgets": [1, 2], "prm_steps": 5, "resamples": 20,
                                    "methods": [*METHODS, "vanilla_stock"]}}}})  # the GPU recipe too
    assert result.success
    rows = pl.read_parquet(data / "reports" / "method_frontier.parquet")
    assert set(rows["method"]) == {*METHODS, "vanilla_stock"} and set(rows["budget"]) == {"b1", "b2"}
    stock = rows.filter(pl.col("method") == "vanilla_stock")
    assert (stock["problems"] < 6).all()  # its fine-tuning is paid up front: the pool's 6 problems stay out of reach
    from assets.method_frontier import MethodFrontierConfig, frontier_inputs
    from prm_core.compare.frontier import Point
    from prm_core.compare.points import score_point

    x = frontier_inputs(StorageResource(base_dir=str(data)), DomainResource().get(), KEYS, MethodFrontierConfig(prm_steps=3))
    row, frames = score_point(x, Point("vanilla_stock", "all", 0.0, 6, 0.0, False, 6))  # trained on the whole pool
    assert row["f1"] is not None and row["trained_responses"] > 0 and set(frames) == {"processbench", "bon"}
    vanilla = rows.filter(pl.col("method") == "vanilla").sort("budget")
    assert vanilla["problems"].to_list() == [1, 2] and (vanilla["flops"] == vanilla["budget_flops"]).all()
    bought = rows.filter(pl.col("problems") > 0)  # a method whose fixed cost alone exceeds a budget buys nothing there
    assert (bought["flops"] <= bought["budget_flops"] * (1 + 1e-9)).all()  # nothing spends beyond its budget
    oracle = rows.filter((pl.col("method") == "oracle") & (pl.col("budget") == "b2")).row(0, named=True)
    assert oracle["problems"] > 2 and oracle["f1"] is not None  # exact labels cost no rollouts: more problems
    assert rows.filter(pl.col("problems") == 6)["capped"].all()  # the pool (6 problems) ran out before the budget
    summary = read_summary(data)
    for method in ("vanilla", "oracle", "actprm", "implicit_ce"):
        for key in ("f1", "bon", "flops", "responses"):
            assert f"frontier.{method}.b2.{key}" in summary, (method, key)
    scored = rows.filter(pl.col("bon").is_not_null())
    paired = pl.read_parquet(data / "reports" / "method_frontier_paired.parquet")
    per_budget = scored.group_by("budget").len()["len"].to_list()
    assert paired.height == sum(n * (n - 1) // 2 for n in per_budget)
    assert {"bon_diff", "bon_diff_se", "bon_separable", "f1_diff_se"} <= set(paired.columns)
    md = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert {"frontier", "frontier_plot", "paired", "cost/seconds"} <= set(md)
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {"within_budget": True}
