"""Per-partition metadata (each shard's event describes that shard only) and kept work that keeps its cost: a rerun
that reuses everything reports `reused: true` with the costs of the run that computed it, and the summary's cost
keys stay as they were."""

import dagster as dg
import polars as pl
import pytest

from assets.common.partitions import shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from orchestration.cli import RANGE_END, RANGE_START
from prm_core.lineage.summary import read_summary
from tests.support.pipeline import ALL_ASSETS, CONFIG, by_partition

KEYS = ["arith-0000", "arith-0001"]
SELECTION = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates",
             "denoised_labels"]
COST_KEYS = ("rollouts.tokens", "rollouts.tokens_per_s", "policy.train_seconds", "policy.final_loss",
             "mc.vanilla.tokens", "mc.vanilla.rollouts", "mc.vanilla.seconds", "mc.scan.tokens", "mc.scan.seconds")



@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The shard assets on two shards, then the same run again (everything kept): (data dir, first, second,
    summary after the first)."""
    data = tmp_path_factory.mktemp("meta") / "data"
    resources = {"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(),
                 "generator": GeneratorResource(engine="transformers"), "tracking": TrackingResource(root=str(data.parent))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, KEYS)
        runs = []
        for _ in range(2):
            runs.append(dg.materialize(ALL_ASSETS, instance=instance, selection=SELECTION, resources=resources,
                                       run_config={"ops": {k: v for k, v in CONFIG["ops"].items() if k in SELECTION}},
                                       tags={RANGE_START: KEYS[0], RANGE_END: KEYS[-1]}))
            assert runs[-1].success
            if len(runs) == 1:
                summary = read_summary(data)
    return data, runs[0], runs[1], summary


def test_each_shard_event_describes_its_own_shard(two_runs):
    data, first, _, _ = two_runs
    for asset in ("problem_pool", "rollouts", "step_truth", "self_confidence", "mc_estimates", "denoised_labels"):
        md = by_partition(first, asset)
        assert sorted(md) == KEYS, asset
        for key in KEYS:
            df = pl.read_parquet(data / asset / f"{key}.parquet")
            assert md[key]["dagster/row_count"] == df.height, (asset, key)
            assert set(md[key]["lineage/files"]) >= {f"{asset}/{key}.parquet"}, (asset, key)
            assert not [f for f in md[key]["lineage/files"] if any(other in f for other in KEYS if other != key)]
            assert {r.data["shard"] for r in md[key]["preview"].records} == {key}, (asset, key)
    roll = by_partition(first, "rollouts")
    for key in KEYS:
        df = pl.read_parquet(data / "rollouts" / f"{key}.parquet")
        assert roll[key]["cost/generated_tokens"] == df["num_tokens"].sum() > 0
        assert roll[key]["cost/rollouts"] == df.height and roll[key]["cost/seconds"] > 0
        assert roll[key]["reused"] is False and roll[key]["run/engine_startup_seconds"] > 0  # the real start, paid before
    assert roll[KEYS[0]]["cost/generated_tokens"] != roll[KEYS[1]]["cost/generated_tokens"]
    mc = by_partition(first, "mc_estimates")
    for key in KEYS:
        costs = pl.read_parquet(data / "mc_costs" / f"{key}.parquet")
        assert mc[key]["cost/generated_tokens"] == costs["tokens"].sum() > 0
        assert mc[key]["cost/rollouts"] == costs["rollouts"].sum() > 0
    assert mc[KEYS[0]]["cost/generated_tokens"] != mc[KEYS[1]]["cost/generated_tokens"]


def test_a_rerun_that_keeps_everything_reports_the_cost_it_had(two_runs):
    data, first, second, summary = two_runs
    cost = ("cost/seconds", "cost/generated_tokens", "cost/rollouts")
    for asset in ("rollouts", "mc_estimates"):
        before, after = by_partition(first, asset), by_partition(second, asset)
        for key in KEYS:
            assert after[key]["reused"] is True, (asset, key)
            assert [after[key][c] for c in cost] == [before[key][c] for c in cost], (asset, key)
            assert all(after[key][c] > 0 for c in cost), (asset, key)
        assert by_partition(second, asset)[KEYS[0]]["run/engine_startup_seconds" if asset == "rollouts"
                                                    else "run/chunks_computed"] == 0
    before, after = by_partition(first, "policy_model")[None], by_partition(second, "policy_model")[None]
    assert after["train"]["reused"] is True and after["train"]["final_loss"] == before["train"]["final_loss"]
    assert after["cost/seconds"] >= before["train"]["seconds"] > 0
    assert after["accuracy_t1"] == before["accuracy_t1"]
    # the summary's cost keys: present, non-zero and unchanged by a run that computed nothing
    again = read_summary(data)
    assert {k: again[k] for k in COST_KEYS} == {k: summary[k] for k in COST_KEYS}
    assert all(again[k] for k in COST_KEYS)
