"""`step_truth`: exact per-step labels and `first_error` of every rollout — what later stages are audited against."""


import dagster as dg
import polars as pl

from assets.common.metadata import Timer, plot_md, read_shards, record_partition, table
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, StorageResource
from prm_core.lineage.storage import frame_md5, read_parquet, write_parquet
from prm_core.lineage.summary import update_summary


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["problem_pool", "rollouts"],
    code_version="1",
    group_name="labels",
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("first_error_consistent", asset="step_truth",
                          description="first_error in [-1, n_steps); no first error implies a correct final answer"),
        dg.AssetCheckSpec("agrees_with_grader", asset="step_truth",
                          description="the checker's final-answer verdict equals the rollout grade"),
    ],
    description="Exact step labels of every rollout from the domain's checker (arith only).",
)
def step_truth(context: dg.AssetExecutionContext, storage: StorageResource, domain: DomainResource) -> dg.MaterializeResult:
    from prm_core.domains import has_exact_labeller
    from prm_core.labels.step_truth import first_error_counts, label_rollouts

    dom = domain.get()
    if not has_exact_labeller(dom):
        raise ValueError(f"domain {dom.name!r} has no exact step labeller; step_truth exists for the arith testbed only")
    frames, disagree = [], 0
    for shard in context.partition_keys:
        with Timer() as t:
            pool = read_parquet(storage.table("problem_pool", shard))
            roll = read_parquet(storage.table("rollouts", shard))
            truth = label_rollouts(dom, pool, roll)
            write_parquet(truth, storage.table("step_truth", shard))
        disagree += truth.join(roll.select("response_id", "correct"), on="response_id").filter(
            pl.col("final_correct") != pl.col("correct")).height
        frames.append(truth)
        record_partition(context, storage, shard, truth, [storage.table("step_truth", shard)], t.seconds,
                         steps=int(truth["n_steps"].sum()),
                         process_correct_share=float((truth["first_error"] == -1).mean() or 0.0),
                         final_correct_share=float(truth["final_correct"].mean() or 0.0),
                         first_errors=table(first_error_counts(truth)), first_error_plot=_first_error_plot(truth))
    batch = pl.concat(frames)
    inconsistent = batch.filter(
        (pl.col("first_error") < -1) | (pl.col("first_error") >= pl.col("n_steps"))
        | ((pl.col("first_error") == -1) & ~pl.col("final_correct"))
    ).height
    everything = read_shards(storage.shard_tables("step_truth", all_shards(context)))
    wrong = everything.filter(pl.col("first_error") >= 0)
    update_summary(storage.base_dir, {
        "truth.responses": everything.height,
        "truth.correct_process": float((everything["first_error"] == -1).mean()),
        "truth.lucky_answers": int(wrong["final_correct"].sum()),
        "truth.mean_first_error": float(wrong["first_error"].mean()) if wrong.height else -1.0,
    })
    return dg.MaterializeResult(
        data_version=dg.DataVersion(frame_md5(batch)),
        check_results=[
            dg.AssetCheckResult(check_name="first_error_consistent", passed=inconsistent == 0, metadata={"violations": inconsistent}),
            dg.AssetCheckResult(check_name="agrees_with_grader", passed=disagree == 0, metadata={"disagreements": disagree}),
        ],
    )


def _first_error_plot(truth: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = truth.filter(pl.col("first_error") >= 0)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    counts = wrong.group_by("first_error").len().sort("first_error")
    ax.bar(counts["first_error"].to_list(), counts["len"].to_list(), color="#c0504d")
    ax.set_xlabel("first error (0-based step)")
    ax.set_ylabel("responses")
    ax.set_title(f"{wrong.height} of {truth.height} responses have an error")
    return plot_md(fig)
