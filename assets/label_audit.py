"""`label_audit`: every MC method's labels against the exact step truth, bucketed by self-confidence, with costs."""

import dagster as dg
import polars as pl

from assets.common.metadata import Timer, files_written, mc_seconds, plot_md, read_shards, table
from assets.common.partitions import all_shards
from assets.common.resources import StorageResource
from prm_core.lineage.summary import summary_path, update_summary

SUMMARY_METHODS = ("vanilla", "scan", "scan_binary")


@dg.asset(
    deps=["mc_estimates", "step_truth", "self_confidence"],
    code_version="2",
    group_name="labels",
    kinds={"polars", "matplotlib", "parquet"},
    description="First-error accuracy, under/over-estimation and noise ratio per method and SC bucket; rollout costs.",
)
def label_audit(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    from prm_core.labels.audit import all_in_costs, first_error_accuracy, same_responses_accuracy, step_confusion

    with Timer() as t:
        keys = all_shards(context)
        mc = read_shards(storage.shard_tables("mc_estimates", keys))
        truth = read_shards(storage.shard_tables("step_truth", keys))
        costs = read_shards(storage.shard_tables("mc_costs", keys))
        fe = first_error_accuracy(mc, truth)
        steps = step_confusion(mc, truth)
        sc_tokens = int(read_shards(storage.shard_tables("self_confidence", keys))["tokens"].sum())
        ct = all_in_costs(costs, sc_tokens)
        on_scan = same_responses_accuracy(mc, truth, "vanilla", on="scan")
    overall = {r["method"]: r for r in fe.filter(pl.col("bucket") == "all").to_dicts()}
    summary = {}
    for m in SUMMARY_METHODS:  # a method that labelled nothing reports nulls, never a missing key
        row = overall.get(m, {})
        for key in ("first_error_acc", "noise_ratio", "under_rate", "over_rate"):
            summary[f"labels.{m}.{key}"] = row.get(key)
        summary[f"labels.{m}.responses"] = row.get("responses", 0)
    if on_scan is not None:
        summary["labels.vanilla.first_error_acc_on_scan_responses"] = on_scan
    update_summary(storage.base_dir, summary)
    tables = write_tables(storage, fe, steps, ct)
    seconds = mc_seconds(storage, keys)  # shown here, not written: timings differ between identical runs
    shown = ct.with_columns(seconds=pl.Series([round(seconds.get(m, 0.0), 2) for m in ct["method"]], dtype=pl.Float64))
    return dg.MaterializeResult(
        metadata={
            "first_error_by_bucket": table(fe),
            "step_confusion": table(steps),
            "cost": table(shown),
            "noise_plot": _noise_plot(fe),
            "cost_plot": _cost_plot(ct),
            "markdown": dg.MetadataValue.md(_markdown(fe, shown)),
            "vanilla_first_error_acc_on_scan_responses": on_scan if on_scan is not None else -1.0,
            "cost/seconds": round(t.seconds, 2),
            **files_written(storage, [*tables, summary_path(storage.base_dir)]),
        }
    )


TABLES = ("first_error", "steps", "cost")


def table_path(storage: StorageResource, name: str):
    return storage.root / "reports" / f"label_audit_{name}.parquet"


def write_tables(storage: StorageResource, fe: pl.DataFrame, steps: pl.DataFrame, ct: pl.DataFrame) -> list:
    from prm_core.lineage.storage import write_parquet

    return [write_parquet(df, table_path(storage, name)) for df, name in zip((fe, steps, ct), TABLES)]


@dg.asset_check(asset=label_audit, blocking=True,
                description="every method's responses and steps counted once, buckets add up, rates in [0, 1] (blocks downstream)")
def audit_is_sound(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """Recounts the written audit against the labels, so a response lost in a join (no step truth) fails the run."""
    from prm_core.labels.audit import audit_violations
    from prm_core.lineage.storage import read_parquet

    mc = read_shards(storage.shard_tables("mc_estimates", all_shards(context)))
    problems = audit_violations(mc, *(read_parquet(table_path(storage, name)) for name in TABLES))
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"violations": len(problems), "problems": dg.MetadataValue.json(problems[:20])})


def _markdown(fe: pl.DataFrame, ct: pl.DataFrame) -> str:
    def md(df: pl.DataFrame) -> str:
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
        lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
        return "\n".join(lines)

    return "### Labels against the exact truth\n\n" + md(fe) + "\n\n### Rollout cost\n\n" + md(ct)


def _noise_plot(fe: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = ["all", "low", "mid", "high"]
    methods = fe["method"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
    for ax, col, title in zip(axes, ("under_rate", "over_rate", "first_error_acc"),
                              ("under-estimation (error predicted early)", "over-estimation (late)", "first-error accuracy")):
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            sub = {r["bucket"]: r[col] for r in fe.filter(pl.col("method") == m).to_dicts()}
            xs = [b + i * width for b in range(len(buckets))]
            bars = ax.bar(xs, [sub.get(b) or 0 for b in buckets], width, label=m)
            for x, b in zip(xs, buckets):  # a method with no responses in a bucket (SCAN labels only confident ones)
                if sub.get(b) is None:
                    ax.text(x, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=6,
                            color=bars.patches[0].get_facecolor())
        ax.set_xticks([b + 0.4 - width / 2 for b in range(len(buckets))], buckets)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("self-confidence bucket")
    axes[0].legend(fontsize=8)
    return plot_md(fig)


def _cost_plot(ct: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar(ct["method"].to_list(), ct["all_in_tokens"].to_list(), color=["#4f81bd", "#9bbb59", "#f79646"][: ct.height])
    for x, ratio in enumerate(ct["all_in_ratio_vs_vanilla"].to_list()):
        if ratio is not None:
            ax.annotate(f"{ratio:.3f}×", (x, ct["all_in_tokens"][x]), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("generated tokens (log)")
    ax.set_title("MC labelling cost, all-in (rollouts + SC samples)", fontsize=9)
    return plot_md(fig)
