"""(c) of bench/scaling.py: one shard through two vLLM engines on a local Ray (2 CPUs) against the in-process
engine, same seed: whether the rollout and MC tables are equal, and the seconds ratio (the Ray test's own path)."""

import tempfile
from pathlib import Path


def compare(args) -> dict:
    from bench.scaling import default_policy
    from tests.orchestration.test_ray_placement import ray_vs_in_process

    work = Path(tempfile.mkdtemp(prefix="prm-ray-"))
    policy = args.policy or default_policy()
    if policy is None:  # the tiny policy of the tests, built here (no hub)
        from tests.conftest import build_tiny_policy

        policy = build_tiny_policy(work / "policy")
    return ray_vs_in_process(work, Path(policy), replicas=2)
