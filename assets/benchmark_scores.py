"""`benchmark_scores`: every PRM on the ProcessBench-style set (official F1), on best-of-N, and on the real ProcessBench."""


import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, plot_md, table
from assets.common.partitions import label_sets
from assets.common.resources import StorageResource, TrackingResource
from prm_core.lineage.summary import update_summary

ALL_LABEL_SETS = dg.AllPartitionMapping()


class BenchmarkConfig(dg.Config):
    real_processbench: str = Field(default="", description="folder of the real ProcessBench split files; empty: ../shared/data/processbench")
    real_processbench_label_sets: list[str] = Field(default=["scan"], description="PRMs scored on the real ProcessBench")
    real_processbench_rows: int = Field(default=100, description="rows per split scored (its first ones; 0 = all 3400, ~45 s per PRM on 2 cores)")
    separator: str = "\n"
    batch_size: int = Field(default=64, description="sequences per scoring forward pass (lower it for 7B backbones with features)")


def _real_dir(config: BenchmarkConfig):
    from assets.common.paths import project_root
    from prm_core.lineage.storage import as_path

    return as_path(config.real_processbench) if config.real_processbench else project_root().parent / "shared" / "data" / "processbench"


def _plot(scores: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = scores["label_set"].to_list()
    a.bar(names, scores["f1"].to_list(), color="tab:blue")
    a.set_title("ProcessBench-style F1 (test, dev τ)")
    a.set_ylim(0, 1)
    b.bar(names, scores["prm_min"].to_list(), yerr=scores["prm_min_stderr"].to_list(), color="tab:green")
    b.axhline(scores["majority"][0], color="gray", ls="--", label="majority")
    b.axhline(scores["pass_at_n"][0], color="black", ls=":", label="pass@N")
    b.set_title("best-of-N, prm_min")
    b.set_ylim(0.5, 1)
    b.legend(loc="lower right")
    return fig


@dg.asset(
    deps=[dg.AssetDep("prm_model", partition_mapping=ALL_LABEL_SETS), "benchmark_sets"],
    code_version="1",
    group_name="evaluation",
    kinds={"polars", "mlflow"},
    description="Per PRM: ProcessBench-style F1 (test; τ from dev, and τ=0.5), best-of-N (min, last, weighted vote vs majority, pass@N, greedy), real ProcessBench F1.",
)
def benchmark_scores(context: dg.AssetExecutionContext, config: BenchmarkConfig, storage: StorageResource,
                     tracking: TrackingResource) -> dg.MaterializeResult:
    from transformers import AutoTokenizer

    from assets.prm_model import EXPERIMENT, prm_dir, training_info
    from prm_core.evaluation.benchmark_scores import bon_scores, processbench_scores, split_f1
    from prm_core.evaluation.benchmark_sets import load_processbench
    from prm_core.evaluation.processbench import choose_threshold
    from prm_core.lineage.storage import read_parquet, write_parquet
    from prm_core.prm.discriminative import load_prm, score_steps

    have_sets = storage.table("benchmark_sets", "bon").exists()  # not for real data: no fresh problems with exact labels
    pb = read_parquet(storage.table("benchmark_sets", "processbench")) if have_sets else None
    bon = read_parquet(storage.table("benchmark_sets", "bon")) if have_sets else None
    real_dir = _real_dir(config)
    real = pl.concat([load_processbench(f) for f in sorted(real_dir.glob("*.json"))]) if real_dir.exists() else None
    if real is None:
        context.log.warning(f"no real ProcessBench at {real_dir} (config `real_processbench`): not scored")
    if real is not None and config.real_processbench_rows:
        real = real.group_by("split", maintain_order=True).head(config.real_processbench_rows)
    rows, real_rows, summary = [], [], {}
    with Timer() as t:
        for label_set in label_sets.get_partition_keys():
            path = prm_dir(storage, label_set)
            if not (path / "model.safetensors").exists():
                context.log.warning(f"no PRM for {label_set!r} at {path}: skipped")
                continue
            model, tok = load_prm(path), AutoTokenizer.from_pretrained(path)
            row = {"label_set": label_set}
            if have_sets:
                pb_scores = score_steps(model, tok, pb["prompt"].to_list(), pb["steps"].to_list(), config.separator,
                                 config.batch_size)
                bon_steps = score_steps(model, tok, bon["prompt"].to_list(), bon["steps"].to_list(), config.separator,
                                 config.batch_size)
                row.update(processbench_scores(pb, pb_scores), **bon_scores(bon, bon_steps))
            if real is not None and label_set in config.real_processbench_label_sets:
                real_scores = score_steps(model, tok, real["prompt"].to_list(), real["steps"].to_list(), config.separator,
                                 config.batch_size)
                gsm = [i for i, s in enumerate(real["split"]) if s == "gsm8k"] or list(range(real.height))
                tau = choose_threshold([real_scores[i] for i in gsm], [real["label"][i] for i in gsm])  # official: τ on GSM8K
                for name, at in (("gsm8k_tau", tau), ("tau05", 0.5)):
                    per = split_f1(real, real_scores, at).with_columns(label_set=pl.lit(label_set), threshold=pl.lit(name), tau=pl.lit(at))
                    real_rows.append(per)
                row["real_avg_f1"] = float(real_rows[-2]["f1"].mean())
                row["real_avg_f1_tau05"] = float(real_rows[-1]["f1"].mean())
                summary[f"processbench.real.avg_f1.{label_set}"] = row["real_avg_f1"]
                summary["processbench.real.rows"] = real.height
            rows.append(row)
            if have_sets:
                summary.update({f"prm.{label_set}.f1": row["f1"], f"prm.{label_set}.f1_tau05": row["f1_tau05"],
                                f"prm.{label_set}.tau": row["tau"], f"prm.{label_set}.pair_order": row["pair_order"],
                                f"bon.prm_min.{label_set}": row["prm_min"], f"bon.prm_min_vote.{label_set}": row["prm_min_vote"],
                                f"bon.prm_last.{label_set}": row["prm_last"]})
            training = training_info(path)
            if training.get("mlflow_run_id"):
                mlflow = tracking.experiment(EXPERIMENT)
                with mlflow.start_run(run_id=training["mlflow_run_id"]):
                    mlflow.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not rows:
        raise ValueError("no PRM to benchmark: materialize `prm_model` first")
    scores = pl.DataFrame(rows)
    real_table = pl.concat(real_rows) if real_rows else None
    metadata = {"processbench_real": (table(real_table.with_columns(pl.col(pl.Float64).round(3))) if real_table is not None
                                      else dg.MetadataValue.text(f"not scored: no split files in {real_dir}")),
                **cost(t.seconds)}
    if have_sets:
        first = rows[0]
        summary.update({"bon.majority": first["majority"], "bon.pass_at_n": first["pass_at_n"], "bon.pass_at_1": first["first"],
                        "bon.greedy": first["greedy"], "bon.problems": first["n_problems"], "bon.n": first["n"],
                        "bon.stderr": max(r["prm_min_stderr"] for r in rows)})
        by = {r["label_set"]: r for r in rows}
        if "scan" in by and "oracle" in by and by["oracle"]["f1"] > 0:
            summary["prm.scan_over_oracle_f1"] = by["scan"]["f1"] / by["oracle"]["f1"]
        if "scan" in by and "vanilla" in by:
            summary["prm.scan_minus_vanilla_f1"] = by["scan"]["f1"] - by["vanilla"]["f1"]
        show = scores.select("label_set", "f1", "f1_tau05", "tau", "acc_err", "acc_cor", "prm_min", "prm_min_stderr",
                             "prm_min_vote", "prm_last", "pair_order", "majority", "pass_at_n", "greedy")
        metadata.update(comparison=table(show.with_columns(pl.col(pl.Float64).round(3))), comparison_plot=plot_md(_plot(scores)))
    else:  # real data: the real ProcessBench only
        metadata["comparison"] = table(scores)
    write_parquet(scores, storage.root / "reports" / "benchmark_scores.parquet")
    if real_table is not None:
        write_parquet(real_table, storage.root / "reports" / "processbench_real.parquet")
    update_summary(storage.base_dir, summary)
    return dg.MaterializeResult(metadata=metadata)
