"""Jobs: each runs its assets in one process (one engine start per run; 2 cores well used).

A Dagster run covers one partition range, so the pipeline is three runs that `prm run` chains: the shard stage
(per problem-pool shard, plus the benchmark sets and the PRM backbone, made while the engine is up), the implicit
stage (per outcome loss: ce, dpo, kto, nca) and the PRM stage (per label set: vanilla, scan, oracle; its
benchmark scores every PRM of both).
"""

import dagster as dg

import assets
from assets.common.partitions import label_sets

SHARD_STAGE = [
    "problem_pool", "policy_model", "rollouts", "step_truth",
    "self_confidence", "mc_estimates", "denoised_labels", "label_audit", "label_exports",
    "benchmark_sets", "prm_backbone", "actprm_model", "actprm_selection", "actprm_filtered_pool",
]
IMPLICIT_STAGE = ["implicit_prm"]
PRM_STAGE = ["filtered_corpus", "prm_model", "benchmark_scores", "prm_exports", "run_summary"]
PIPELINE_ASSETS = SHARD_STAGE + IMPLICIT_STAGE + PRM_STAGE
COMPARE_STAGE = ["method_frontier"]  # not in the default run: `prm compare`
# need the exact step labeller of the arith testbed
EXACT_ONLY = ("step_truth", "label_audit", "benchmark_sets", "actprm_selection", "actprm_filtered_pool")
TEXT_SHARD_STAGE = [a for a in SHARD_STAGE if a not in EXACT_ONLY]  # real data sets

default_pipeline = dg.define_asset_job(
    "default_pipeline",
    selection=dg.AssetSelection.assets(*SHARD_STAGE),
    executor_def=dg.in_process_executor,
    description="Arith testbed, per shard: pool -> policy -> rollouts -> exact step truth -> self-confidence -> MC estimates (vanilla, SCAN) -> labels -> audit; benchmark sets; PRM backbone; ActPRM (pool-based, its selection, one-shot).",
)

# real data sets have no exact step labeller: the same pipeline without `step_truth`
text_pipeline = dg.define_asset_job(
    "text_pipeline",
    selection=dg.AssetSelection.assets(*TEXT_SHARD_STAGE),
    executor_def=dg.in_process_executor,
    description="Real data (GSM8K, MATH, files): the same without the exact truth and the audit (math-verify grades); ActPRM one pass with the LLM critique judge.",
)

implicit_pipeline = dg.define_asset_job(
    "implicit_pipeline",
    selection=dg.AssetSelection.assets(*IMPLICIT_STAGE),
    executor_def=dg.in_process_executor,
    description="Per outcome loss (ce, dpo, kto, nca): an implicit PRM from the rollouts' outcome labels (MLflow).",
)

prm_pipeline = dg.define_asset_job(
    "prm_pipeline",
    selection=dg.AssetSelection.assets(*PRM_STAGE),
    executor_def=dg.in_process_executor,
    description="Per label set (vanilla, scan, oracle): training corpus -> PRM (MLflow) -> benchmarks -> exports -> summary.",
)


compare_pipeline = dg.define_asset_job(
    "compare_pipeline",
    selection=dg.AssetSelection.assets(*COMPARE_STAGE),
    executor_def=dg.in_process_executor,
    description="Not in the default run (`prm compare`): every labelling method at matched all-in FLOP budgets, its "
                "PRM's F1 and best-of-N ± s.e. on the shared benchmark sets, paired comparisons per budget.",
)


def label_set_keys(arith: bool) -> list[str]:
    """The PRM stage's label sets: `oracle` needs the arith testbed's exact step truth."""
    return [k for k in label_sets.get_partition_keys() if arith or k != "oracle"]


def pipeline_keys() -> tuple[list[str], list[dg.AssetCheckKey]]:
    """The pipeline's asset keys (both stages) and every asset check on them: what a release needs green."""
    defs = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]
    specs = [spec for a in defs for spec in a.check_specs]  # checks inside assets and blocking ones beside them
    checks = sorted((s.key for s in specs if s.asset_key.to_user_string() in PIPELINE_ASSETS), key=str)
    return sorted(PIPELINE_ASSETS), checks
