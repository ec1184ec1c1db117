"""`actprm_selection`: what ActPRM sent to the judge and why — per trajectory of seed 0's pass: μ/σ evidence, the
reason (aleatoric, epistemic), the judge's answer and the exact truth, with the selection's quality."""

import dagster as dg
import polars as pl

from assets.common.metadata import Timer, cost, files_written, preview, table
from assets.common.resources import StorageResource


@dg.asset(
    deps=["actprm_model"],
    code_version="1",
    group_name="prm",
    kinds={"polars", "parquet"},
    check_specs=[dg.AssetCheckSpec("judged_only_when_selected", asset="actprm_selection",
                                   description="a trajectory has a judge answer only if it was selected")],
    description="ActPRM's selection table (seed 0): μ/σ evidence, reason, judge answer and exact truth per trajectory.",
)
def actprm_selection(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    from prm_core.lineage.storage import read_parquet

    path = storage.root / "reports" / "actprm_selection.parquet"
    if not path.exists():
        context.log.warning("no ActPRM selection (actprm_model skipped): nothing to show")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])},
                                    check_results=[dg.AssetCheckResult(check_name="judged_only_when_selected", passed=True)])
    with Timer() as t:
        sel = read_parquet(path)
        reason = (pl.when(pl.col("aleatoric") & pl.col("epistemic")).then(pl.lit("both"))
                  .when(pl.col("aleatoric")).then(pl.lit("aleatoric"))
                  .when(pl.col("epistemic")).then(pl.lit("epistemic")).otherwise(pl.lit("confident")))
        by_reason = sel.group_by(reason=reason).agg(trajectories=pl.len(), labelled=pl.col("labelled").sum(),
                                                    with_error=(pl.col("true_first_error") >= 0).mean()).sort("reason")
        by_batch = sel.group_by("batch").agg(selected=pl.col("labelled").mean()).sort("batch")
        judged = sel.filter(pl.col("labelled"))
        agree = float((judged["judge_first_error"] == judged["true_first_error"]).mean()) if judged.height else 0.0
    bad = sel.filter(~pl.col("labelled") & pl.col("judge_first_error").is_not_null()).height
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sel.height,
            "selection_rate": float(sel["labelled"].mean()),
            "by_reason": table(by_reason),
            "selection_rate_by_batch": table(by_batch),
            "judge_agrees_with_truth": agree,
            "preview": preview(judged),
            **cost(t.seconds),
            **files_written(storage, []),  # it reads actprm_model's selection; it writes nothing
        },
        check_results=[dg.AssetCheckResult(check_name="judged_only_when_selected", passed=bad == 0,
                                           metadata={"violations": bad})],
    )
