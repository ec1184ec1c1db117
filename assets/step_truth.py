"""`step_truth`: exact per-step labels and `first_error` of every rollout — what later stages are audited against."""


import dagster as dg
import polars as pl

from assets.common.metadata import Timer, cost, files_written, plot_md, preview, read_shards, table
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, StorageResource
from prm_core.lineage.storage import frame_md5, read_parquet, write_parquet
from prm_core.lineage.summary import summary_path, update_summary


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
    with Timer() as t:
        for shard in context.partition_keys:
            pool = read_parquet(storage.table("problem_pool", shard))
            roll = read_parquet(storage.table("rollouts", shard))
            truth = label_rollouts(dom, pool, roll)
            disagree += truth.join(roll.select("response_id", "correct"), on="response_id").filter(
                pl.col("final_correct") != pl.col("correct")).height
            write_parquet(truth, storage.table("step_truth", shard))
            frames.append(truth)
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
        metadata={
            "dagster/row_count": batch.height,
            "steps": int(batch["n_steps"].sum()),
            "process_correct_share": float((batch["first_error"] == -1).mean()),
            "final_correct_share": float(batch["final_correct"].mean()),
            "first_errors": table(first_error_counts(batch)),
            "first_error_plot": _first_error_plot(batch),
            "preview": preview(batch),
            **cost(t.seconds),
            **files_written(storage, [*storage.shard_tables("step_truth", context.partition_keys), summary_path(storage.base_dir)]),
        },
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
