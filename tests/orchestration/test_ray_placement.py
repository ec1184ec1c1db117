"""Engine placement on Ray: how a pool splits and seeds work (3 actors of a scripted engine), and one shard of rollouts
and MC estimates through a local Ray (2 CPUs) that matches the in-process engine row for row."""

import os
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from prm_core.generation.engines import vllm_available
from prm_core.generation.sampling import SamplingSpec, request_seed

ray = pytest.importorskip("ray")
pytest.importorskip("dagster_ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a throwaway local cluster

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

SELECTION = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates"]
TABLES = ["rollouts", "mc_estimates"]
RAY_INIT = {"num_cpus": 2, "include_dashboard": False, "ignore_reinit_error": True}
ENGINE = {"engine": "vllm", "max_num_seqs": 64, "kv_cache_gib": 1}


def _materialize(data: Path, policy: Path, generator) -> float:
    """One shard of the tiny config's generating stages with `generator`; the run's seconds."""
    import assets
    from assets.common.partitions import shards
    from assets.common.resources import DomainResource, StorageResource, TrackingResource
    from orchestration.cli import RANGE_END, RANGE_START
    from tests.orchestration.test_mc_pipeline import CONFIG

    ops = {**CONFIG["ops"], "policy_model": {"config": {"pretrained": str(policy)}}}
    everything = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]
    start = time.perf_counter()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, ["arith-0000"])
        result = dg.materialize(
            everything, instance=instance, selection=SELECTION,
            resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(), "generator": generator,
                       "tracking": TrackingResource(root=str(data.parent))},
            run_config={"ops": {k: v for k, v in ops.items() if k in SELECTION}},
            tags={RANGE_START: "arith-0000", RANGE_END: "arith-0000"})
    assert result.success
    return time.perf_counter() - start


def _tables(data: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(data / name / "arith-0000.parquet") for name in TABLES}


def ray_vs_in_process(workdir: Path, policy: Path, replicas: int = 2) -> dict:
    """The same shard, same seed, in-process and on `replicas` Ray actors of vLLM (a local Ray of 2 CPUs): whether the
    rollout and MC tables are content-equal, and the seconds of each (bench keys `ray_rows_equal`, `ray_overhead`)."""
    from dagster_ray import LocalRay

    from assets.common.resources import GeneratorResource

    local_s = _materialize(workdir / "local" / "data", policy, GeneratorResource(**ENGINE))
    on_ray = GeneratorResource(**ENGINE, placement="ray", replicas=replicas, gpus_per_replica=0, cpus_per_replica=0.5,
                               ray_cluster=LocalRay(ray_init_options=RAY_INIT))
    ray_s = _materialize(workdir / "ray" / "data", policy, on_ray)
    local, remote = _tables(workdir / "local" / "data"), _tables(workdir / "ray" / "data")
    equal = all(local[name].equals(remote[name]) for name in TABLES)
    return {"ray_rows_equal": equal, "ray_overhead": round(ray_s / local_s, 3), "ray_seconds": round(ray_s, 1),
            "in_process_seconds": round(local_s, 1), "replicas": replicas,
            "rows": {name: local[name].height for name in TABLES}}


def test_pool_slices_contiguously_and_seeds_by_global_index():
    """3 actors, 7 prompts: slices of 3, 2, 2 in order, each prompt seeded as in one engine; n samples per prompt."""
    from prm_core.generation.ray_pool import RayEnginePool, balanced_slices
    from tests.scripted import seed_echo_engine

    assert balanced_slices(7, 3) == [(0, 3), (3, 5), (5, 7)] and balanced_slices(2, 3) == [(0, 1), (1, 2)]
    ray.init(**RAY_INIT)
    try:
        pool = RayEnginePool("vllm", "unused", replicas=3, gpus_per_replica=0, cpus_per_replica=0.5,
                             factory=seed_echo_engine, startup_timeout=120)
        prompts = [f"p{i}" for i in range(7)]
        out = pool.generate(prompts, SamplingSpec(n=2, seed=3), offset=10)
        fields = [[s.text.split("|") for s in row] for row in out]
        assert [row[0][0] for row in fields] == prompts and all(len(row) == 2 for row in fields)
        assert [int(row[0][1]) for row in fields] == [request_seed(3, 10 + i) for i in range(7)]
        pids = [row[0][3] for row in fields]
        assert len(set(pids)) == 3 and pids == sorted(pids, key=pids.index)  # three actors, each one contiguous run
        assert [len(list(g)) for g in (pids[a:b] for a, b in balanced_slices(7, 3))] == [3, 2, 2]
        assert pool.stats.requests == 7 and pool.stats.samples == 14 and pool.stats.prompt_tokens == 14
        pool.close()
        with pytest.raises(ValueError, match="seeds per batch"):
            RayEnginePool("transformers", "unused", replicas=2, factory=seed_echo_engine)
        with pytest.raises(TimeoutError, match="did not start"):  # asks more CPUs than there are: fails, no hang
            RayEnginePool("vllm", "unused", replicas=3, gpus_per_replica=0, cpus_per_replica=1.0,
                          factory=seed_echo_engine, startup_timeout=5)
    finally:
        ray.shutdown()


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_one_shard_on_two_ray_actors_matches_in_process(tmp_path, tiny_policy):
    """Rollouts and MC estimates of one shard, same seed: two vLLM actors on a local Ray give the in-process rows."""
    facts = ray_vs_in_process(tmp_path, tiny_policy, replicas=2)
    print(facts)
    assert facts["rows"]["rollouts"] > 0 and facts["rows"]["mc_estimates"] > 0
    assert facts["ray_rows_equal"], facts
