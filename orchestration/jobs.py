"""Jobs: the default pipeline runs every asset in one process (one engine start, 2 cores well used)."""

import dagster as dg

PIPELINE_ASSETS = ["problem_pool", "policy_model", "rollouts", "step_truth", "run_summary"]

default_pipeline = dg.define_asset_job(
    "default_pipeline",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS),
    executor_def=dg.in_process_executor,
    description="Problem pool -> policy -> rollouts -> exact step truth -> summary, on the shards given as a partition range.",
)
