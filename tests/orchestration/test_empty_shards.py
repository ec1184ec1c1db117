"""Empty shards and prompts longer than the engine's context flow through the shard stage (issue 15)."""

import json

import dagster as dg
import polars as pl

from assets.common.partitions import shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from orchestration.cli import RANGE_END, RANGE_START
from prm_core.domains.arith import ArithDomain
from prm_core.lineage.summary import read_summary
from tests.support.pipeline import ALL_ASSETS, CONFIG, SELECTION

KEYS = ["a-empty", "b-good", "c-bad"]


def _write_sources(src):
    src.mkdir()
    problems = list(ArithDomain().problems(6, seed=3))
    rows = [{"id": p.problem_id, "question": p.question, "answer": p.answer} for p in problems]
    rows.append({"id": "too-long", "question": problems[0].question + " 1 + 1 =" * 400, "answer": "2"})
    (src / "b-good.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (src / "a-empty.jsonl").write_text("")
    (src / "c-bad.jsonl").write_text('{"question": "2 + 2 = ?", "answer": NaN}\n{"question": ["x"], "answer": "1"}\n')


def test_empty_shards_and_overlong_prompts_flow_through(tmp_path):
    src, data = tmp_path / "src", tmp_path / "data"
    _write_sources(src)
    ops = {k: v for k, v in CONFIG["ops"].items() if k in SELECTION}
    ops["problem_pool"] = {"config": {"source": str(src), "max_question_chars": 100_000}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        result = dg.materialize(
            ALL_ASSETS, instance=instance, selection=SELECTION, raise_on_error=False,
            resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(),
                       "generator": GeneratorResource(engine="transformers", max_model_len=256),
                       "tracking": TrackingResource(root=str(data.parent))},
            run_config={"ops": ops}, tags={RANGE_START: KEYS[0], RANGE_END: KEYS[-1]})
    assert result.success
    for asset in ("problem_pool", "rollouts", "step_truth", "self_confidence", "denoised_labels"):
        assert pl.read_parquet(data / asset / "a-empty.parquet").is_empty(), asset
    roll = pl.read_parquet(data / "rollouts" / "b-good.parquet")
    assert roll.height == 6 * 2 and "too-long" not in roll["problem_id"].to_list()
    skipped = pl.read_parquet(data / "rollouts_skipped" / "b-good.parquet")
    assert skipped["problem_id"].to_list() == ["too-long"] and skipped["shard"].to_list() == ["b-good"]
    assert "256" in skipped["reason"][0]
    md = {m.partition: m.metadata for m in result.asset_materializations_for_node("rollouts")}  # per shard
    assert md["b-good"]["skipped_prompts"].value == 1 and md["a-empty"]["skipped_prompts"].value == 0
    assert md["a-empty"]["dagster/row_count"].value == 0 and md["b-good"]["dagster/row_count"].value == 12
    summary = read_summary(data)
    assert summary["rollouts.count"] == 12 and summary["rollouts.skipped_prompts"] == 1
    assert summary["pool.problems"] == 7 and summary["pool.quarantined"] == 2
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert all(checks.values()), checks
