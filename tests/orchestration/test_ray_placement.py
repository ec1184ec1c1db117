"""Engine placement on Ray: how a pool splits and seeds work (3 actors of a scripted engine), and one shard of rollouts
and MC estimates through a local Ray (2 CPUs) that matches the in-process engine row for row."""

import os

import pytest

from bench.ray_compare import RAY_INIT, ray_vs_in_process
from prm_core.generation.engines import vllm_available
from prm_core.generation.sampling import SamplingSpec, request_seed
from tests.scripted import seed_echo_engine

ray = pytest.importorskip("ray")
pytest.importorskip("dagster_ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a throwaway local cluster

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_pool_slices_contiguously_and_seeds_by_global_index():
    """3 actors, 7 prompts: slices of 3, 2, 2 in order, each prompt seeded as in one engine; n samples per prompt."""
    from prm_core.generation.ray_pool import RayEnginePool, balanced_slices

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
