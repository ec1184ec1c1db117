"""`denoised_labels`: training labels per method in one schema — SCAN's confidence-scaled soft labels, vanilla's c_t."""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, record_partition, table
from assets.common.partitions import shard_backfill, shards
from assets.common.resources import StorageResource
from prm_core.labels.denoised_labels import LabelConfig
from prm_core.lineage.storage import frame_md5, read_parquet, write_parquet
from prm_core.lineage.summary import update_summary


class DenoisedLabelsConfig(dg.Config):
    balance: bool = Field(default=LabelConfig.balance, description="1:1 positives:negatives by seeded down-sampling (SCAN methods)")
    seed: int = LabelConfig.seed


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["mc_estimates", "rollouts"],
    code_version="2",
    group_name="labels",
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("labels_in_unit_interval", asset="denoised_labels"),
        dg.AssetCheckSpec("one_first_error_at_most", asset="denoised_labels",
                          description="SCAN negatives: one zero label, at the last kept step; positives: none"),
        dg.AssetCheckSpec("nothing_after_detected_error", asset="denoised_labels",
                          description="SCAN negatives keep exactly the steps up to the detected error"),
    ],
    description="Noise-tolerant labels: min(c_t/SC, 1) on the d steps before t_e, 0 at it, 1 before, later steps removed.",
)
def denoised_labels(context: dg.AssetExecutionContext, config: DenoisedLabelsConfig, storage: StorageResource) -> dg.MaterializeResult:
    from prm_core.labels.denoised_labels import LABEL_SCHEMA, build_labels

    cfg = LabelConfig(balance=config.balance, seed=config.seed)
    frames, counts = [], []
    for shard in context.partition_keys:
        with Timer() as t:
            mc = read_parquet(storage.table("mc_estimates", shard))
            roll = read_parquet(storage.table("rollouts", shard))
            steps = dict(zip(roll["response_id"], roll["steps"].to_list()))
            parts, shard_counts = [], []
            for method in mc["method"].unique(maintain_order=True).to_list():
                labels, c = build_labels(mc.filter(pl.col("method") == method), steps, cfg, key=f"{shard}/{method}")
                parts.append(labels)
                shard_counts.append({"shard": shard, "method": method, **c})
            df = pl.concat(parts) if parts else pl.DataFrame(schema=LABEL_SCHEMA)  # an empty shard: zero rows
            write_parquet(df, storage.table("denoised_labels", shard))
        frames.append(df)
        counts += shard_counts
        record_partition(context, storage, shard, df, [storage.table("denoised_labels", shard)], t.seconds,
                         **_shard_tables(df, shard_counts))
    batch = pl.concat(frames)
    flat = batch.select("method", "labels").explode("labels")
    scan_neg = batch.filter((pl.col("method") != "vanilla") & ~pl.col("is_positive"))
    scan_pos = batch.filter((pl.col("method") != "vanilla") & pl.col("is_positive"))
    out_of_range = flat.filter((pl.col("labels") < 0) | (pl.col("labels") > 1) | pl.col("labels").is_null()).height
    zeros = scan_neg.with_columns(z=pl.col("labels").list.eval((pl.element() == 0).sum()).list.first(),
                                  last=pl.col("labels").list.last())
    bad_first = zeros.filter((pl.col("z") != 1) | (pl.col("last") != 0)).height + scan_pos.filter(
        pl.col("labels").list.min() < 1).height
    after = scan_neg.filter(pl.col("steps").list.len() != pl.col("predicted_error") + 1).height
    by_method = pl.DataFrame(counts).group_by("method").agg(pl.exclude("shard").sum()).sort("method")
    update_summary(storage.base_dir, {  # what each method labelled, and what it trains on after balancing
        f"labels.{r['method']}.{key}": r[col] for r in by_method.to_dicts()
        for key, col in (("labelled", "responses"), ("dropped_no_zero", "dropped_no_zero"),
                         ("train_positives", "positives"), ("train_negatives", "negatives"))
    })
    return dg.MaterializeResult(
        data_version=dg.DataVersion(frame_md5(batch)),
        check_results=[
            dg.AssetCheckResult(check_name="labels_in_unit_interval", passed=out_of_range == 0, metadata={"violations": out_of_range}),
            dg.AssetCheckResult(check_name="one_first_error_at_most", passed=bad_first == 0, metadata={"violations": bad_first}),
            dg.AssetCheckResult(check_name="nothing_after_detected_error", passed=after == 0, metadata={"violations": after}),
        ],
    )


def _shard_tables(df: pl.DataFrame, counts: list[dict]) -> dict:
    """One shard's label counts and mean label per method."""
    flat = df.select("method", "labels").explode("labels")
    by_method = pl.DataFrame(counts).drop("shard") if counts else pl.DataFrame()
    return {"counts_by_method": table(by_method),
            "label_mean_by_method": table(flat.group_by("method").agg(mean_label=pl.col("labels").mean(),
                                                                      steps=pl.len()).sort("method"))}
