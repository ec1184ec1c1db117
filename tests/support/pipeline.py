"""The tiny pipeline the orchestration tests run: every asset and check, its configs, the three stages of `prm run`,
and each partition's materialization metadata."""

import dagster as dg

import assets
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from bench.ray_compare import TINY_OPS
from orchestration.cli import RANGE_END, RANGE_START

ALL_ASSETS = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]
KEYS = ["arith-0000"]
CONFIG = {"ops": {  # the generating stages at the size bench/ray_compare.py runs too
    **TINY_OPS,
    "policy_model": {"config": {"hidden_size": 64, "num_layers": 1, "num_heads": 2, "intermediate_size": 128,
                                "train_steps": 30, "eval_problems": 4, "max_new_tokens": 32}},
}}
PRM_CONFIG = {
    "benchmark_sets": {"config": {"processbench_per_class": 3, "bon_problems": 4, "bon_n": 2}},
    "prm_backbone": {"config": {"train_steps": 5}},
    "actprm_model": {"config": {"seeds": 2, "heads": 3, "grid_pred": [0.8], "grid_std": [0.05, 0.1], "mc_judge": True}},
    "actprm_filtered_pool": {"config": {"problems": 4, "samples": 2, "max_new_tokens": 40}},
    "prm_model": {"config": {"steps": 10, "batch_size": 4}},
    "implicit_prm": {"config": {"batch_size": 4, "ce_sweep": [1]}},
    "benchmark_scores": {"config": {"real_processbench_label_sets": []}},
}


def materialize_pipeline(instance, data_dir, keys, generator=None):
    """The three stages of `prm run` on the tiny config (shards, implicit losses ce..dpo, label sets); their results."""
    from assets.common.partitions import label_sets
    from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE

    resources = {"storage": StorageResource(base_dir=str(data_dir)), "domain": DomainResource(),
                 "generator": generator or GeneratorResource(engine="transformers"),
                 "tracking": TrackingResource(root=str(data_dir.parent))}
    ops = {**CONFIG["ops"], **PRM_CONFIG}
    results = []
    for names, (first, last) in ((SHARD_STAGE, (keys[0], keys[-1])), (IMPLICIT_STAGE, ("ce", "dpo")),
                                 (PRM_STAGE, (label_sets.get_partition_keys()[0], label_sets.get_partition_keys()[-1]))):
        results.append(dg.materialize(ALL_ASSETS, instance=instance, selection=names, resources=resources,
                                      run_config={"ops": {k: v for k, v in ops.items() if k in names}},
                                      tags={RANGE_START: first, RANGE_END: last}))
        assert results[-1].success
    return results


SELECTION = ["problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates",
             "denoised_labels", "label_audit", "label_exports"]


def by_partition(result, key: str) -> dict:
    """{partition: metadata values} of the materializations of `key` in `result` (None: unpartitioned)."""
    return {m.partition: {k: v.value for k, v in m.materialization.metadata.items()}
            for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(key)}
