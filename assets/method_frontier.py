"""`method_frontier`: every labelling method at matched FLOP budgets — what each budget buys it, its PRM's F1 and
best-of-N with standard errors, and which methods the paired comparisons can tell apart (the `compare` job)."""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, plot_md, read_shards, table
from assets.common.models import actprm_dir, actprm_info, backbone_train_tokens
from assets.common.partitions import all_shards
from assets.common.resources import DomainResource, StorageResource
from prm_core.compare.frontier import METHODS, point_line
from prm_core.lineage.summary import summary_path, update_summary
from prm_core.prm.discriminative import PRMTrainConfig

CODE_VERSION = "1"
ALL_SHARDS = dg.AllPartitionMapping()
TRAIN = PRMTrainConfig()


class MethodFrontierConfig(dg.Config):
    budgets: list[int] = Field(default=[40, 80, 160], description="budgets, each vanilla MC's all-in FLOPs on this many "
                                                                    "problems (`prm compare --budgets`)")
    methods: list[str] = Field(default=list(METHODS), description="methods on the frontier (add `<set>_stock` for the "
                                                                  "stock token classifier fine-tuned whole: the GPU recipe)")
    prm_steps: int = Field(default=TRAIN.steps, description="optimizer steps of every discriminative PRM (as prm_model)")
    resamples: int = Field(default=1000, description="bootstrap draws of F1's standard error")
    actprm_seeds: int = Field(default=3, description="ActPRM's active passes per point (seeds 0..n-1); the best on dev "
                                                      "is kept")
    separator: str = "\n"


def frontier_inputs(storage: StorageResource, dom, keys: list[str], config: MethodFrontierConfig):
    """The pool over `keys` in pool order, every label set (the oracle: exact labels of every response), the
    benchmark sets, the models and ActPRM's dev-chosen thresholds: what the frontier reads."""
    from prm_core.compare.points import FrontierInputs
    from prm_core.labels.denoised_labels import oracle_labels
    from prm_core.lineage.storage import local_copy, read_parquet

    problems = read_shards(storage.shard_tables("problem_pool", keys)).sort("shard", "problem_id")
    roll = read_shards(storage.shard_tables("rollouts", keys)).sort("shard", "problem_id", "sample_index")
    labels = read_shards(storage.shard_tables("denoised_labels", keys))
    by_set = {m: labels.filter(pl.col("method") == m) for m in labels["method"].unique().to_list()}
    if storage.shard_tables("step_truth", keys) and all(p.exists() for p in storage.shard_tables("step_truth", keys)):
        truth = read_shards(storage.shard_tables("step_truth", keys))
        by_set["oracle"] = oracle_labels(truth, dict(zip(roll["response_id"], roll["steps"].to_list())),
                                         roll["response_id"].to_list())
    backbone = local_copy(storage.model("prm_backbone"))
    thresholds = None
    if (actprm_dir(storage) / "actprm.json").exists():
        info = actprm_info(actprm_dir(storage))
        thresholds = (info["delta_pred"], info["delta_std"])
    return FrontierInputs(
        domain=dom, problems=problems, rollouts=roll, labels=by_set,
        mc=read_shards(storage.shard_tables("mc_estimates", keys)).select("method", "problem_id", "rollout_tokens"),
        pb=read_parquet(storage.table("benchmark_sets", "processbench")), bon=read_parquet(storage.table("benchmark_sets", "bon")),
        backbone=backbone, policy=local_copy(storage.model("policy")),
        backbone_train_tokens=backbone_train_tokens(backbone),
        thresholds=thresholds, separator=config.separator, prm=PRMTrainConfig(steps=config.prm_steps),
        resamples=config.resamples, actprm_seeds=config.actprm_seeds)


def _plot(rows: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric, title in zip(axes, ("f1", "bon"), ("ProcessBench-style F1 (test, dev τ)", "best-of-N (min)")):
        for (method,), g in rows.drop_nulls(metric).sort("flops").group_by("method", maintain_order=True):
            ax.errorbar((g["flops"] / 1e12).to_list(), g[metric].to_list(), yerr=g[f"{metric}_se"].fill_null(0.0).to_list(),
                        marker="o", capsize=2, label=method)
        ax.set_xlabel("all-in TFLOPs")
        ax.set_title(title, fontsize=9)
    if (majority := rows["majority"].drop_nulls()).len():
        axes[1].axhline(majority[0], color="gray", ls="--", label="majority vote")
    axes[1].legend(fontsize=7)
    return fig


@dg.asset(
    deps=[dg.AssetDep(a, partition_mapping=ALL_SHARDS)
          for a in ("problem_pool", "rollouts", "step_truth", "mc_estimates", "denoised_labels")]
    + ["prm_backbone", "benchmark_sets", "policy_model", "actprm_model"],
    code_version=CODE_VERSION,
    group_name="compare",
    kinds={"pytorch", "polars", "parquet"},
    check_specs=[dg.AssetCheckSpec("within_budget", asset="method_frontier",
                                   description="every point that bought data spent no more than its budget")],
    description="Every method at matched all-in FLOP budgets (vanilla MC on 40/80/160 problems): the problems each "
                "budget buys it, its PRM's F1 and best-of-N ± s.e., paired differences per budget.",
)
def method_frontier(context: dg.AssetExecutionContext, config: MethodFrontierConfig, storage: StorageResource,
                    domain: DomainResource) -> dg.MaterializeResult:
    from prm_core.compare.points import method_frontier as frontier
    from prm_core.evaluation.paired import PAIRED_SCHEMA
    from prm_core.lineage.storage import write_parquet

    with Timer() as t:
        x = frontier_inputs(storage, domain.get(), all_shards(context), config)
        found = frontier(x, tuple(config.budgets), tuple(config.methods),
                         on_point=lambda r: context.log.info(f"frontier: {point_line(r)}"))
    rows = pl.from_dicts(found.rows, infer_schema_length=None)
    paired = pl.DataFrame(found.paired, schema={"budget": pl.String, **PAIRED_SCHEMA})  # none: fewer than two scored
    reports = storage.root / "reports"
    write_parquet(rows, reports / "method_frontier.parquet")
    write_parquet(paired, reports / "method_frontier_paired.parquet")
    update_summary(storage.base_dir, found.summary(), "frontier.")  # the frontier replaced whole
    capped = rows.filter(pl.col("capped"))
    over = rows.filter((pl.col("problems") > 0) & (pl.col("flops") > pl.col("budget_flops") * (1 + 1e-9)))
    return dg.MaterializeResult(check_results=[
        dg.AssetCheckResult(check_name="within_budget", passed=over.is_empty(),
                            metadata={"over_budget": over.height})], metadata={
        "frontier": table(rows.select("budget", "method", "problems", "capped", "problems_wanted", "flops", "f1", "f1_se",
                                      "bon", "bon_se")),
        "frontier_plot": plot_md(_plot(rows)),
        "paired": table(paired),
        "capped_points": len(capped),
        "points_total_flops": dg.MetadataValue.float(float(rows["flops"].sum())),  # what the points' methods spend
        **cost(t.seconds),
        **files_written(storage, [reports / "method_frontier.parquet", reports / "method_frontier_paired.parquet",
                                  summary_path(storage.base_dir)]),
    })
