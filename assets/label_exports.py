"""`label_exports`: every label set in the formats the field uses (TRL, ProcessBench, SCAN, Math-Shepherd, HF)."""

import dagster as dg
import polars as pl

from assets.common.metadata import Timer, files_written, read_shards, table
from assets.common.partitions import all_shards
from assets.common.resources import DomainResource, StorageResource


@dg.asset(
    deps=["denoised_labels", "step_truth", "problem_pool", "rollouts", "policy_model"],
    code_version="2",
    group_name="labels",
    kinds={"json", "parquet"},
    description="data/exports/<label set>/ (vanilla, scan, scan_binary, and oracle on the arith testbed): trl.jsonl, "
                "processbench.json, scan.jsonl, math_shepherd.jsonl, hf/ (Parquet + card).",
)
def label_exports(context: dg.AssetExecutionContext, storage: StorageResource, domain: DomainResource) -> dg.MaterializeResult:
    from prm_core.domains.problems import prompts_frame
    from prm_core.labels.denoised_labels import oracle_set
    from prm_core.labels.exports import export, export_rows
    from prm_core.lineage.storage import md5_dir

    dom = domain.get()
    with Timer() as t:
        keys = all_shards(context)
        labels = read_shards(storage.shard_tables("denoised_labels", keys))
        truth = read_shards(storage.shard_tables("step_truth", keys))
        if not truth.is_empty():  # the exact labels of vanilla's responses: the ceiling, exported like the others
            labels = pl.concat([labels, oracle_set(labels, truth, read_shards(storage.shard_tables("rollouts", keys)))])
        pool = read_shards(storage.shard_tables("problem_pool", keys))
        problems = pool.select("problem_id", "question").with_columns(prompt=prompts_frame(dom, pool)["prompt"])
        rollouts = read_shards(storage.shard_tables("rollouts", keys)).select("response_id", "correct")
        version = f"policy@{md5_dir(storage.model('policy'))[:12]}"
        rows = export_rows(labels, problems, rollouts, model_version=version)
        written = []
        for method in sorted(rows["method"].unique().to_list()):
            part = rows.filter(pl.col("method") == method)
            for fmt, path in export(part, storage.root / "exports" / method, name=f"prm-foundry-{method}").items():
                written.append({"method": method, "format": fmt, "rows": part.height, "path": path})
    return dg.MaterializeResult(metadata={"files": table(pl.DataFrame(written)), "model_version": version,
                                          "cost/seconds": round(t.seconds, 2),
                                          **files_written(storage, [w["path"] for w in written])})
