"""The code location: assets and checks from `assets/`, resources chosen by environment, jobs and sensors; every
asset's owner, tags (stage, layer, domain) and, on the sensor's path, freshness policy are set here."""


import os
from datetime import timedelta

import dagster as dg

import assets
from assets.common.resources import (
    DomainResource,
    GeneratorResource,
    StorageResource,
    TrackingResource,
    default_data_dir,
)
from orchestration.jobs import (
    COMPARE_STAGE,
    EXACT_ONLY,
    IMPLICIT_STAGE,
    PRM_STAGE,
    SHARD_STAGE,
    compare_pipeline,
    default_pipeline,
    implicit_pipeline,
    prm_pipeline,
    text_pipeline,
)
from orchestration.release_job import release_job
from orchestration.sensors import new_problem_files, refresh_prm_stage, regenerate_new_shards


def resources_for(env: str) -> dict:
    """Resources by `PRM_ENV`: `local` (default) and `ci` use the embedded testbed on this machine, `prod` vLLM on
    GPUs; `PRM_PLACEMENT=ray` puts the engines on a Ray cluster (`ray_placement`)."""
    settings = {"engine": os.environ.get("PRM_ENGINE", "transformers" if env == "ci" else "auto"), **served_engine()}
    if env == "prod" and settings["engine"] != "openai":
        settings = {"engine": "vllm", "gpu_memory_utilization": 0.9, "max_num_seqs": 1024,
                    "tensor_parallel_size": int(os.environ.get("PRM_TENSOR_PARALLEL", "1"))}
    if os.environ.get("PRM_PLACEMENT", "local") == "ray":
        settings.update(ray_placement(settings.get("tensor_parallel_size", 1) if env == "prod" else 0))
    return {
        "storage": StorageResource(base_dir=default_data_dir()),
        "domain": DomainResource(name=os.environ.get("PRM_DOMAIN", "arith")),
        "generator": GeneratorResource(**settings),
        "tracking": TrackingResource(),
    }


def served_engine() -> dict:
    """`engine: openai`'s settings from the environment: `PRM_BASE_URL`, `PRM_SERVED_MODEL`, `PRM_API_KEY_ENV` (the
    name of the variable holding the key, never the key), `PRM_MAX_CONCURRENCY`; only those that are set."""
    names = {"base_url": "PRM_BASE_URL", "served_model": "PRM_SERVED_MODEL", "api_key_env": "PRM_API_KEY_ENV",
             "max_concurrency": "PRM_MAX_CONCURRENCY"}
    return {k: int(os.environ[v]) if k == "max_concurrency" else os.environ[v] for k, v in names.items() if v in os.environ}


def ray_placement(gpus: float) -> dict:
    """The generator's Ray settings: `PRM_RAY_REPLICAS` engine actors (default 1) of `PRM_RAY_GPUS_PER_REPLICA` GPUs
    (default: `gpus`, the tensor-parallel size in prod, none elsewhere) on dagster-ray's cluster: `PRM_RAY_CLUSTER=kuberay`
    a KubeRay cluster (dagster-ray[kuberay]); else `LocalRay`, which joins `RAY_ADDRESS` when set (`ray start`'s head,
    `ray://head:10001`) and starts a Ray on this machine otherwise."""
    if os.environ.get("PRM_RAY_CLUSTER", "local") == "kuberay":
        from dagster_ray.kuberay import KubeRayCluster

        cluster = KubeRayCluster()
    else:
        from dagster_ray import LocalRay

        cluster = LocalRay(ray_init_options={"ignore_reinit_error": True})
    return {"placement": "ray", "replicas": int(os.environ.get("PRM_RAY_REPLICAS", "1")), "ray_cluster": cluster,
            "gpus_per_replica": float(os.environ.get("PRM_RAY_GPUS_PER_REPLICA", gpus)),
            "cpus_per_replica": float(os.environ.get("PRM_RAY_CPUS_PER_REPLICA", "1"))}


OWNER = "team:prm-foundry"
STAGES = {**dict.fromkeys(SHARD_STAGE, "shard"), **dict.fromkeys(IMPLICIT_STAGE, "implicit"), **dict.fromkeys(PRM_STAGE, "prm"),
          **dict.fromkeys(COMPARE_STAGE, "compare")}
# what a new problem file (the `new_problem_files` sensor) changes: the shard's tables and the label reports over them;
# the models and benchmark sets it reuses are not expected to move
FRESH_ON_NEW_FILES = ("problem_pool", "rollouts", "step_truth", "self_confidence", "mc_estimates", "denoised_labels",
                      "label_audit", "label_exports")
FRESHNESS_HOURS = 24.0  # PRM_FRESHNESS_HOURS overrides (0: none); warned at half of it


def freshness_policy() -> dg.FreshnessPolicy | None:
    """Fail when the newest materialization is older than PRM_FRESHNESS_HOURS (default 24), warn at half of that."""
    hours = float(os.environ.get("PRM_FRESHNESS_HOURS", FRESHNESS_HOURS))
    if hours <= 0:
        return None
    return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=hours), warn_window=timedelta(hours=hours / 2))


def annotated(spec: dg.AssetSpec, policy: dg.FreshnessPolicy | None = None) -> dg.AssetSpec:
    """Owner and tags for the catalog's filters: its run stage, its `prm_core` layer (the group), its domain (`arith`:
    needs the exact step labeller; `any`); `policy` on the assets that new problem files keep fresh."""
    name = spec.key.to_user_string()
    spec = spec.merge_attributes(owners=[OWNER], tags={
        "stage": STAGES.get(name, "none"), "layer": spec.group_name or "none", "domain": "arith" if name in (*EXACT_ONLY, *COMPARE_STAGE) else "any"})
    return spec.replace_attributes(freshness_policy=policy) if name in FRESH_ON_NEW_FILES and policy else spec


@dg.definitions
def defs() -> dg.Definitions:
    policy = freshness_policy()
    return dg.Definitions(
        assets=dg.map_asset_specs(lambda spec: annotated(spec, policy), dg.load_assets_from_package_module(assets)),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[default_pipeline, text_pipeline, implicit_pipeline, prm_pipeline, compare_pipeline, release_job],
        sensors=[new_problem_files, refresh_prm_stage],
        schedules=[regenerate_new_shards],
        resources=resources_for(os.environ.get("PRM_ENV", "local")),
    )
