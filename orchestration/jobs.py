"""Jobs: each runs its assets in one process (one engine start per run; 2 cores well used)."""

import dagster as dg

PIPELINE_ASSETS = ["problem_pool", "policy_model", "rollouts", "step_truth", "run_summary"]

default_pipeline = dg.define_asset_job(
    "default_pipeline",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS),
    executor_def=dg.in_process_executor,
    description="Arith testbed: problem pool -> policy -> rollouts -> exact step truth -> summary, over a range of shards.",
)

# real data sets have no exact step labeller: the same pipeline without `step_truth`
text_pipeline = dg.define_asset_job(
    "text_pipeline",
    selection=dg.AssetSelection.assets(*[a for a in PIPELINE_ASSETS if a != "step_truth"]),
    executor_def=dg.in_process_executor,
    description="Real data (GSM8K, MATH, files): problem pool -> policy -> rollouts (math-verify grades) -> summary.",
)
