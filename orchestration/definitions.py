"""The code location: assets and checks from `assets/`, resources chosen by environment, jobs and sensors."""


import os

import dagster as dg

import assets
from assets.common.resources import (
    DomainResource,
    GeneratorResource,
    StorageResource,
    TrackingResource,
    default_data_dir,
)
from orchestration.jobs import default_pipeline, implicit_pipeline, prm_pipeline, text_pipeline
from orchestration.release_job import release_job
from orchestration.sensors import new_problem_files


def resources_for(env: str) -> dict:
    """Resources by `PRM_ENV`: `local` (default) and `ci` use the embedded testbed on this machine."""
    base = {
        "storage": StorageResource(base_dir=default_data_dir()),
        "domain": DomainResource(name=os.environ.get("PRM_DOMAIN", "arith")),
        "generator": GeneratorResource(engine=os.environ.get("PRM_ENGINE", "auto")),
        "tracking": TrackingResource(),
    }
    if env == "ci":
        base["generator"] = GeneratorResource(engine=os.environ.get("PRM_ENGINE", "transformers"))
    if env == "prod":
        base["generator"] = GeneratorResource(engine="vllm", gpu_memory_utilization=0.9, max_num_seqs=1024,
                                              tensor_parallel_size=int(os.environ.get("PRM_TENSOR_PARALLEL", "1")))
    return base


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_package_module(assets),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[default_pipeline, text_pipeline, implicit_pipeline, prm_pipeline, release_job],
        sensors=[new_problem_files],
        resources=resources_for(os.environ.get("PRM_ENV", "local")),
    )
