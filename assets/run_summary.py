"""`run_summary`: the run's headline numbers, written to `reports/summary.json` and shown as a table."""


import time
from datetime import datetime

import dagster as dg

from assets.common.metadata import files_written
from assets.common.resources import StorageResource
from prm_core.lineage.summary import format_summary, summary_path, update_summary


@dg.asset(
    deps=["policy_model", "rollouts", "step_truth", "denoised_labels", "label_audit", "benchmark_scores"],
    code_version="1",
    group_name="lineage",
    kinds={"json"},
    description="Headline numbers of the pipeline (reports/summary.json), including the wall time of `prm run`.",
)
def run_summary(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    stats = context.instance.get_run_stats(context.run_id)
    # `prm run` chains its runs (shards, implicit PRMs, PRMs) and tags each with its ISO start time
    tagged = context.run.tags.get("prm/started")
    started = datetime.fromisoformat(tagged).timestamp() if tagged else stats.start_time or time.time()
    summary = update_summary(storage.base_dir, {"run.seconds": round(time.time() - started, 1), "run.id": context.run_id})
    return dg.MaterializeResult(metadata={"summary": dg.MetadataValue.md(f"```\n{format_summary(summary)}\n```"),
                                          "path": dg.MetadataValue.path(str(storage.root / "reports" / "summary.json")),
                                          **files_written(storage, [summary_path(storage.base_dir)])})
