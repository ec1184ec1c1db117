"""Jobs: each runs its assets in one process (one engine start per run; 2 cores well used)."""

import dagster as dg

PIPELINE_ASSETS = [
    "problem_pool", "policy_model", "rollouts", "step_truth",
    "self_confidence", "mc_estimates", "denoised_labels", "label_audit", "label_exports",
    "run_summary",
]
EXACT_ONLY = ("step_truth", "label_audit")  # need the exact step labeller of the arith testbed

default_pipeline = dg.define_asset_job(
    "default_pipeline",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS),
    executor_def=dg.in_process_executor,
    description="Arith testbed: pool -> policy -> rollouts -> exact step truth -> self-confidence -> MC estimates (vanilla, SCAN) -> labels -> audit -> summary.",
)

# real data sets have no exact step labeller: the same pipeline without `step_truth`
text_pipeline = dg.define_asset_job(
    "text_pipeline",
    selection=dg.AssetSelection.assets(*[a for a in PIPELINE_ASSETS if a not in EXACT_ONLY]),
    executor_def=dg.in_process_executor,
    description="Real data (GSM8K, MATH, files): the same without the exact truth and the audit (math-verify grades).",
)
