"""In-process materialization of the whole graph on a tiny config, resume, and file sources with bad rows."""

import json
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

import assets
from assets.common.partitions import shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from orchestration.cli import RANGE_END, RANGE_START
from orchestration.definitions import defs
from orchestration.jobs import SHARD_STAGE
from tests.conftest import SHARED_DATA
from tests.support.pipeline import PRM_CONFIG
from tests.support.pipeline import by_partition

TINY_POLICY = {"hidden_size": 64, "num_layers": 1, "num_heads": 2, "intermediate_size": 128, "train_steps": 30,
               "eval_problems": 10, "max_new_tokens": 160}
KEYS = ["arith-0000", "arith-0001"]
ALL_ASSETS = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]


def _run(instance, data_dir, keys=KEYS, pool=None, selection=None):
    resources = {
        "storage": StorageResource(base_dir=str(data_dir)),
        "domain": DomainResource(),
        "generator": GeneratorResource(engine="transformers"),
        "tracking": TrackingResource(root=str(data_dir.parent)),
    }
    config = {"ops": {
        "problem_pool": {"config": pool or {"shard_size": 6}},
        "policy_model": {"config": TINY_POLICY},
        "rollouts": {"config": {"n_samples": 2, "max_new_tokens": 160}},
        **{k: v for k, v in PRM_CONFIG.items() if k in SHARD_STAGE},
    }}
    selection = selection or SHARD_STAGE
    if selection:
        config["ops"] = {k: v for k, v in config["ops"].items() if k in selection}
    return dg.materialize(ALL_ASSETS, instance=instance, resources=resources, run_config=config,
                          tags={RANGE_START: keys[0], RANGE_END: keys[-1]}, selection=selection)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(shards.name, KEYS)
        yield inst


def _metadata(result, key):
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


def test_whole_graph_materializes_on_two_shards(instance, tmp_path):
    data = tmp_path / "data"
    result = _run(instance, data)
    assert result.success
    for asset in ("problem_pool", "rollouts", "step_truth"):
        assert sorted(p.name for p in (data / asset).glob("*.parquet")) == [f"{k}.parquet" for k in KEYS]
    roll = pl.concat([pl.read_parquet(p) for p in sorted((data / "rollouts").glob("*.parquet"))])
    truth = pl.concat([pl.read_parquet(p) for p in sorted((data / "step_truth").glob("*.parquet"))])
    assert roll.height == 2 * 6 * 2 and truth.height == roll.height
    assert (truth["n_steps"] == roll["n_steps"]).all()
    assert (data / "models" / "policy" / "model.safetensors").exists()
    from prm_core.lineage.summary import read_summary

    summary = read_summary(data)  # rollouts.tokens_per_s is a timing: reports/run_info.json
    for key in ("policy.accuracy", "rollouts.count", "rollouts.tokens", "rollouts.tokens_per_s"):  # run.seconds: the PRM stage
        assert key in summary
    assert summary["rollouts.count"] == roll.height and summary["rollouts.tokens"] == roll["num_tokens"].sum()
    # errors must pass; warnings may not (the 30-step policy rarely answers right: the benchmark set is unbalanced)
    assert all(c.passed for c in result.get_asset_check_evaluations() if c.severity == dg.AssetCheckSeverity.ERROR)
    md = by_partition(result, "rollouts")  # each shard's event: that shard's cost
    for key in KEYS:
        shard = roll.filter(pl.col("shard") == key)
        assert md[key]["cost/rollouts"] == shard.height and md[key]["cost/generated_tokens"] == shard["num_tokens"].sum()
    # every shard was recorded as materialized
    for key in KEYS:
        assert instance.get_latest_materialization_event(dg.AssetKey("step_truth")) is not None
    status = instance.get_status_by_partition(dg.AssetKey("step_truth"), KEYS, shards)
    assert status is None or all(s is not None for s in status.values())


def test_rerun_keeps_finished_work_and_new_shards_only_compute_themselves(instance, tmp_path):
    data = tmp_path / "data"
    assert _run(instance, data).success
    first = pl.read_parquet(data / "rollouts" / "arith-0000.parquet")
    # the process "crashed" after shard 0: shard 1's output is gone
    (data / "rollouts" / "arith-0001.parquet").unlink()
    again = _run(instance, data)
    assert again.success
    reused = {k: md["reused"] for k, md in by_partition(again, "rollouts").items()}
    assert reused == {"arith-0000": True, "arith-0001": False}
    assert pl.read_parquet(data / "rollouts" / "arith-0000.parquet").equals(first)
    assert _metadata(again, "policy_model")["train"]["reused"] is True
    # the pool grows: a new shard is computed alone
    instance.add_dynamic_partitions(shards.name, ["arith-0002"])
    grown = _run(instance, data, keys=["arith-0002"])
    assert grown.success and (data / "step_truth" / "arith-0002.parquet").exists()


def test_file_source_quarantines_bad_rows(instance, tmp_path):
    src = tmp_path / "problems"
    src.mkdir()
    good = [json.dumps({"question": "Tom has 3 pens. He finds 2 more. How many now?", "answer": "5"})] * 1
    (src / "batch-a.jsonl").write_text("\n".join(good + ['{"question": "x"', json.dumps({"question": "q"})]) + "\n")
    instance.add_dynamic_partitions(shards.name, ["batch-a"])
    data = tmp_path / "data"
    result = _run(instance, data, keys=["batch-a"], pool={"source": str(src)}, selection=["problem_pool"])
    assert result.success
    md = _metadata(result, "problem_pool")
    assert md["quarantined_rows"] == 2 and md["dagster/row_count"] == 1
    q = pl.read_parquet(data / "problem_pool_quarantine" / "batch-a.parquet")
    assert q["line"].to_list() == [2, 3] and q["reason"].to_list()[1] == "missing answer"


def test_definitions_load_and_jobs_resolve():
    d = defs()
    dg.Definitions.validate_loadable(d)
    job = d.resolve_job_def("default_pipeline")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"problem_pool", "policy_model", "rollouts", "step_truth"} <= keys
    for key in keys:
        assert d.resolve_assets_def(key).code_versions_by_key[dg.AssetKey(key)]


def test_assets_and_orchestration_do_not_import_heavy_modules():
    # loading the code location (every code server and run worker does, once per run) builds the Definitions too
    code = ("import orchestration.definitions as d, sys; d.defs(); "
            "print(any(m in sys.modules for m in ('torch', 'vllm', 'transformers')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_prm_library_never_imports_dagster():
    code = ("import importlib, pkgutil, sys, prm_core\n"
            "for m in pkgutil.walk_packages(prm_core.__path__, 'prm_core.'): importlib.import_module(m.name)\n"
            "print('dagster' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").exists(), reason="shared data not present")
def test_text_pipeline_runs_a_pretrained_policy_on_real_gsm8k(instance, tmp_path, tiny_policy):
    """The real-data path: file shards, a given policy, math-verify grading (the tiny policy scores ~0)."""
    src = tmp_path / "gsm8k"
    src.mkdir()
    lines = (SHARED_DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[:5]
    (src / "gsm8k-head.jsonl").write_text("\n".join(lines) + "\n")
    instance.add_dynamic_partitions(shards.name, ["gsm8k-head"])
    data = tmp_path / "data"
    result = dg.materialize(
        ALL_ASSETS, instance=instance, selection=["problem_pool", "policy_model", "rollouts"],
        resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(name="gsm8k"),
                   "generator": GeneratorResource(engine="transformers"), "tracking": TrackingResource(root=str(tmp_path))},
        run_config={"ops": {"problem_pool": {"config": {"source": str(src)}},
                            "policy_model": {"config": {"pretrained": str(tiny_policy)}},
                            "rollouts": {"config": {"n_samples": 2, "max_new_tokens": 16}}}},
        partition_key="gsm8k-head",
    )
    assert result.success
    roll = pl.read_parquet(data / "rollouts" / "gsm8k-head.parquet")
    assert roll.height == 10 and roll["correct"].dtype == pl.Boolean
    pool = pl.read_parquet(data / "problem_pool" / "gsm8k-head.parquet")
    assert pool["answer"].to_list()[0] == "18"  # GSM8K's '#### 18' final answer


def test_new_problem_files_become_shards(tmp_path, monkeypatch):
    """The sensor adds a shard per new file and requests one run over the new shards' range only."""
    from orchestration.sensors import new_problem_files

    folder = tmp_path / "incoming"
    folder.mkdir()
    for name in ("batch-001", "batch-002"):
        (folder / f"{name}.jsonl").write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    (folder / "notes.txt").write_text("ignored")
    monkeypatch.setenv("PRM_PROBLEMS_DIR", str(folder))
    with dg.instance_for_test() as inst:
        result = new_problem_files(dg.build_sensor_context(instance=inst))
        (request,) = result.run_requests
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("batch-001", "batch-002")
        assert request.run_config["ops"]["problem_pool"]["config"]["source"] == str(folder)
        assert result.dynamic_partitions_requests[0].partition_keys == ["batch-001", "batch-002"]
        inst.add_dynamic_partitions(shards.name, ["batch-001", "batch-002"])
        assert isinstance(new_problem_files(dg.build_sensor_context(instance=inst)), dg.SkipReason)
        (folder / "batch-003.jsonl").write_text(json.dumps({"question": "q", "answer": "2"}) + "\n")
        (grown,) = new_problem_files(dg.build_sensor_context(instance=inst)).run_requests
        assert (grown.tags[RANGE_START], grown.tags[RANGE_END]) == ("batch-003", "batch-003")  # the old ones stay


def test_schedule_regenerates_only_new_shards_and_is_off_by_default(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from orchestration.sensors import regenerate_new_shards

    assert regenerate_new_shards.default_status == dg.DefaultScheduleStatus.STOPPED
    folder = tmp_path / "incoming"
    folder.mkdir()
    monkeypatch.setenv("PRM_PROBLEMS_DIR", str(folder))
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(shards.name, ["old"])
        for name in ("old", "new-a", "new-b"):
            (folder / f"{name}.jsonl").write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
        when = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
        (request,) = regenerate_new_shards(dg.build_schedule_context(instance=inst, scheduled_execution_time=when))
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("new-a", "new-b")
        assert inst.get_dynamic_partitions(shards.name) == ["old", "new-a", "new-b"]
        assert isinstance(regenerate_new_shards(dg.build_schedule_context(instance=inst, scheduled_execution_time=when)),
                          dg.SkipReason)


def test_a_new_shards_run_chains_the_implicit_then_the_prm_stage():
    """After the new shards' run: one implicit run over every loss, after it one PRM run over every label set."""
    from assets.common.partitions import implicit_losses, label_sets
    from orchestration.sensors import NEW_SHARDS_TAG, refresh_prm_stage

    assert refresh_prm_stage.default_status == dg.DefaultSensorStatus.STOPPED

    @dg.op
    def noop():
        pass

    @dg.job
    def probe():
        noop()

    with dg.instance_for_test() as inst:
        events = probe.execute_in_process(instance=inst).all_events
        success = next(e for e in events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)

        def after(job_name: str, tags: dict):
            run = dg.DagsterRun(job_name=job_name, run_id=f"run-{job_name}", tags=tags)
            return refresh_prm_stage(dg.build_run_status_sensor_context(
                sensor_name=refresh_prm_stage.name, dagster_instance=inst, dagster_run=run, dagster_event=success))

        new = {NEW_SHARDS_TAG: "arith-0004", RANGE_START: "arith-0004", RANGE_END: "arith-0004"}
        implicit = after("default_pipeline", new)
        losses = implicit_losses.get_partition_keys()
        assert implicit.job_name == "implicit_pipeline" and implicit.run_key == "run-default_pipeline:implicit_pipeline"
        assert (implicit.tags[RANGE_START], implicit.tags[RANGE_END]) == (losses[0], losses[-1])
        prm = after("implicit_pipeline", implicit.tags)
        sets = label_sets.get_partition_keys()
        assert prm.job_name == "prm_pipeline" and (prm.tags[RANGE_START], prm.tags[RANGE_END]) == (sets[0], sets[-1])
        assert prm.tags[NEW_SHARDS_TAG] == "arith-0004"
        assert isinstance(after("prm_pipeline", prm.tags), dg.SkipReason)  # the refresh ends there
        assert isinstance(after("default_pipeline", {RANGE_START: "a", RANGE_END: "b"}), dg.SkipReason)  # `prm run`'s own
