"""(c) of bench/scaling.py: one shard through two vLLM engines on a local Ray (2 CPUs) against the in-process
engine, same seed: whether the rollout and MC tables are equal, and the seconds ratio (the Ray test's own path:
tests/orchestration/test_ray_placement.py calls `ray_vs_in_process`)."""

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a throwaway local cluster

SELECTION = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates"]
TABLES = ["rollouts", "mc_estimates"]
RAY_INIT = {"num_cpus": 2, "include_dashboard": False, "ignore_reinit_error": True}
ENGINE = {"engine": "vllm", "max_num_seqs": 64, "kv_cache_gib": 1}
TINY_OPS = {  # the generating stages at the tests' tiny size (tests/support/pipeline.py's config uses these)
    "problem_pool": {"config": {"shard_size": 6}},
    "rollouts": {"config": {"n_samples": 2, "max_new_tokens": 40}},
    "mc_estimates": {"config": {"k": 2, "max_new_tokens": 16, "chunk_size": 3, "sc_threshold": 0.0}},
}


def _materialize(data: Path, policy: Path, generator) -> float:
    """One shard of the tiny config's generating stages with `generator`; the run's seconds."""
    import dagster as dg

    import assets
    from assets.common.partitions import shards
    from assets.common.resources import DomainResource, StorageResource, TrackingResource
    from orchestration.cli import RANGE_END, RANGE_START

    ops = {**TINY_OPS, "policy_model": {"config": {"pretrained": str(policy)}}}
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


def ray_vs_in_process(workdir: Path, policy: Path, replicas: int = 2) -> dict:
    """The same shard, same seed, in-process and on `replicas` Ray actors of vLLM (a local Ray of 2 CPUs): whether the
    rollout and MC tables are content-equal, and the seconds of each (bench keys `ray_rows_equal`, `ray_overhead`)."""
    import polars as pl
    from dagster_ray import LocalRay

    from assets.common.resources import GeneratorResource

    local_s = _materialize(workdir / "local" / "data", policy, GeneratorResource(**ENGINE))
    on_ray = GeneratorResource(**ENGINE, placement="ray", replicas=replicas, gpus_per_replica=0, cpus_per_replica=0.5,
                               ray_cluster=LocalRay(ray_init_options=RAY_INIT))
    ray_s = _materialize(workdir / "ray" / "data", policy, on_ray)
    local, remote = ({name: pl.read_parquet(d / name / "arith-0000.parquet") for name in TABLES}
                     for d in (workdir / "local" / "data", workdir / "ray" / "data"))
    equal = all(local[name].equals(remote[name]) for name in TABLES)
    return {"ray_rows_equal": equal, "ray_overhead": round(ray_s / local_s, 3), "ray_seconds": round(ray_s, 1),
            "in_process_seconds": round(local_s, 1), "replicas": replicas,
            "rows": {name: local[name].height for name in TABLES}}


def compare(args) -> dict:
    from bench.scaling import default_policy
    from prm_core.generation.tiny import build_tiny_policy

    work = Path(tempfile.mkdtemp(prefix="prm-ray-"))
    policy = args.policy or default_policy()
    if policy is None:  # the tiny policy of the tests, built here (no hub)
        policy = build_tiny_policy(work / "policy")
    return ray_vs_in_process(work, Path(policy), replicas=2)
