"""`prm run` on a non-local fsspec filesystem (`memory://`): every table and model lands in the object store, nothing in
the working directory, and the shard tables equal a local-dir run's (same seed)."""

import uuid

import dagster as dg
import fsspec
import pytest
from upath import UPath

import assets
from assets.common.partitions import label_sets, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from orchestration.cli import RANGE_END, RANGE_START
from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE
from prm_core.lineage.storage import read_parquet
from tests.support.pipeline import CONFIG, PRM_CONFIG

SELECTION = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates"]
TABLES = ["problem_pool", "rollouts", "step_truth", "self_confidence", "mc_estimates"]
KEY = "arith-0000"
# the MC test's tiny config, smaller still: 3 problems, a policy of a few steps (the rows need not be good, only equal)
OPS = {**CONFIG["ops"], **PRM_CONFIG, "problem_pool": {"config": {"shard_size": 3}},
       "policy_model": {"config": {**CONFIG["ops"]["policy_model"]["config"], "train_steps": 5, "eval_problems": 2}}}
LOCAL = [(SELECTION, (KEY, KEY))]
PRM_RUN = [(SHARD_STAGE, (KEY, KEY)), (IMPLICIT_STAGE, ("ce", "dpo")),  # the three stages of `prm run`
           (PRM_STAGE, (label_sets.get_partition_keys()[0], label_sets.get_partition_keys()[-1]))]


def _materialize(base_dir: str, tracking_root, stages) -> list[dg.ExecuteInProcessResult]:
    everything = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]
    resources = {"storage": StorageResource(base_dir=base_dir), "domain": DomainResource(),
                 "generator": GeneratorResource(engine="transformers"), "tracking": TrackingResource(root=str(tracking_root))}
    results = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, [KEY])
        for names, (first, last) in stages:
            results.append(dg.materialize(everything, instance=instance, selection=names, resources=resources,
                                          run_config={"ops": {k: v for k, v in OPS.items() if k in names}},
                                          tags={RANGE_START: first, RANGE_END: last}))
            assert results[-1].success, names
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The generating shard stages into a local data dir; all of `prm run` into `memory://`, from a working directory
    of its own (a stray relative write, e.g. `Path("memory://...")`, would land there)."""
    import os

    local_cwd, remote_cwd = tmp_path_factory.mktemp("local_cwd"), tmp_path_factory.mktemp("remote_cwd")
    remote = f"memory://prm-{uuid.uuid4().hex[:8]}/data"
    before = os.getcwd()
    try:
        os.chdir(local_cwd)
        _materialize(str(local_cwd / "data"), local_cwd, LOCAL)
        os.chdir(remote_cwd)
        results = _materialize(remote, remote_cwd / "mlflow", PRM_RUN)
    finally:
        os.chdir(before)
    yield local_cwd / "data", UPath(remote), remote_cwd, results[0]
    fsspec.filesystem("memory").rm(UPath(remote).path, recursive=True)


def test_tables_and_policy_live_in_the_object_store(runs):
    _, remote, remote_cwd, _ = runs
    for name in TABLES:
        assert (remote / name / f"{KEY}.parquet").exists(), name
    for model in ("policy", "prm_backbone", "prm/vanilla", "implicit/ce", "actprm"):
        assert any((remote / "models" / model).iterdir()), model
    assert read_parquet(remote / "reports" / "benchmark_scores.parquet").height > 0
    assert (remote / "reports" / "summary.json").exists()
    # nothing of the run on local disk: the working directory holds only the MLflow folder we gave it
    assert sorted(p.name for p in remote_cwd.iterdir()) in ([], ["mlflow"]), sorted(remote_cwd.rglob("*"))


def test_object_store_tables_equal_the_local_run(runs):
    local, remote, _, _ = runs
    def tables(root):  # every table but the cost records (their seconds are timings, by design different)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if not p.name.endswith(".cost.parquet"))

    assert set(tables(local)) <= set(tables(remote)) and len(tables(local)) > len(TABLES)
    for name in tables(local):
        assert read_parquet(local / name).equals(read_parquet(remote / name)), name
    assert read_parquet(remote / "mc_estimates" / f"{KEY}.parquet").height > 0


def test_materializations_record_the_object_store(runs):
    _, remote, _, result = runs
    md = result.asset_materializations_for_node("rollouts")[0].metadata
    assert md["lineage/data_dir"].value == str(remote)
    assert any(name.startswith("rollouts/") for name in md["lineage/files"].value)


def test_a_model_rewritten_in_the_object_store_is_copied_anew(tmp_path):
    """`local_copy` caches a remote model by its files' checksums: a retrained model in place is not the stale copy;
    `atomic_dir` into the store leaves no file of the model it replaces."""
    from prm_core.lineage.storage import atomic_dir, local_copy

    model = UPath(f"memory://prm-{uuid.uuid4().hex[:8]}/models/policy")
    try:
        with atomic_dir(model) as tmp:
            (tmp / "weights.bin").write_bytes(b"one")
            (tmp / "old.bin").write_bytes(b"only in the first")
        first = local_copy(model)
        assert (first / "weights.bin").read_bytes() == b"one" and local_copy(model) == first
        with atomic_dir(model) as tmp:
            (tmp / "weights.bin").write_bytes(b"two")
        second = local_copy(model)
        assert second != first and (second / "weights.bin").read_bytes() == b"two"
        assert sorted(p.name for p in model.iterdir()) == ["weights.bin"] == sorted(p.name for p in second.iterdir())
    finally:
        fsspec.filesystem("memory").rm(model.parent.parent.path, recursive=True)


def test_mlflow_root_must_be_a_local_folder(tmp_path, monkeypatch):
    """The sqlite store cannot live in object storage: a URL root is refused (no local folder named `memory:`)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        TrackingResource(root="memory://prm/mlflow").experiment("x")
    assert not list(tmp_path.iterdir())
