"""`benchmark_scores`: every PRM on the ProcessBench-style set (official F1), on best-of-N, and on the real ProcessBench."""


import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, plot_md, read_shards, table
from assets.common.models import (
    IMPLICIT_EXPERIMENT,
    PRM_EXPERIMENT,
    backbone_train_tokens,
    implicit_info,
    log_scores,
    prm_dir,
    training_info,
)
from assets.common.paths import real_benchmark_dir
from assets.common.partitions import all_shards, label_sets
from assets.common.resources import StorageResource, TrackingResource
from prm_core.lineage.summary import summary_path, update_summary

ALL_PARTITIONS = dg.AllPartitionMapping()


class BenchmarkScoresConfig(dg.Config):
    real_processbench: str = Field(default="", description="folder of the real ProcessBench split files; empty: ../shared/data/processbench")
    real_processbench_label_sets: list[str] = Field(default=["scan"], description="PRMs scored on the real ProcessBench and PRMBench (real data: every PRM, the only benchmarks it has)")
    real_prmbench: str = Field(default="", description="folder of PRMBench's subset400.jsonl; empty: ../shared/data/prmbench")
    real_prmbench_per_class: int = Field(default=12, description="PRMBench rows per error classification (its first "
                                                                 "ones; 0 = all 394)")
    real_processbench_rows: int = Field(default=100, description="rows per split scored (its first ones; 0 = all 3400, ~45 s per PRM on 2 cores)")
    separator: str = "\n"
    batch_size: int = Field(default=64, description="sequences per scoring forward pass (lower it for 7B backbones with features)")


def _plot(scores: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    names = scores["prm"].to_list()
    a.bar(names, scores["f1"].to_list(), color="tab:blue")
    a.set_title("ProcessBench-style F1 (test, dev τ)")
    a.set_ylim(0, 1)
    b.bar(names, scores["prm_min"].fill_null(0.0).to_list(), yerr=scores["prm_min_stderr"].fill_null(0.0).to_list(),
          color="tab:green")
    b.axhline(scores["majority"][0], color="gray", ls="--", label="majority")
    b.axhline(scores["pass_at_n"][0], color="black", ls=":", label="pass@N")
    b.set_title("best-of-N, prm_min")
    b.set_ylim(0.5, 1)
    b.legend(loc="lower right")
    return fig


def prm_costs(storage: StorageResource, rows: list[dict], keys: list[str]) -> dict[str, tuple[float, int]]:
    """FLOPs and generated tokens of each MC-label PRM (prm_core.evaluation.flops): the responses and its MC rollouts,
    the backbone's training and the frozen feature forward over its corpus. The oracle's exact labels cost no
    generation beyond the responses. An ActPRM PRM (its rows from `actprm_model`): the responses, its judge's
    generated tokens (none for the exact judge), the backbone's training and the frozen forward over its pool."""
    from prm_core.evaluation.flops import mc_prm_cost, model_params
    from prm_core.lineage.storage import local_copy

    policy, backbone = local_copy(storage.model("policy")), local_copy(storage.model("prm_backbone"))
    backbone_tokens = backbone_train_tokens(backbone)
    responses = int(read_shards(storage.shard_tables("rollouts", keys))["num_tokens"].sum())
    costs = read_shards(storage.shard_tables("mc_costs", keys))
    mc_tokens = {m: int(t) for m, t in costs.group_by("method").agg(pl.col("tokens").sum()).iter_rows()}
    p_policy, p_backbone = model_params(policy), model_params(backbone)
    out = {}
    for r in rows:
        name = r["prm"]
        if r.get("feature_tokens") is not None:  # ActPRM's
            judged = int(r.get("judge_tokens") or 0)
            out[name] = (mc_prm_cost(responses, judged, p_policy, backbone_tokens, int(r["feature_tokens"]), p_backbone).total,
                         responses + judged)
            continue
        if name.startswith("implicit_") or not (prm_dir(storage, name) / "training.json").exists():
            continue
        corpus_tokens = training_info(prm_dir(storage, name)).get("corpus_tokens", 0)
        rollouts = mc_tokens.get(name, 0)
        out[name] = (mc_prm_cost(responses, rollouts, p_policy, backbone_tokens, corpus_tokens, p_backbone).total,
                     responses + rollouts)
    return out


def _implicit_models(storage: StorageResource, log) -> list[tuple]:
    """Every implicit PRM trained against this run's policy (name, local folder, what it recorded); others: skipped."""
    from prm_core.lineage.storage import local_copy, md5_dir

    found = sorted((p for p in storage.model_dir("implicit").glob("*") if (p / "model.safetensors").exists()), key=lambda p: p.name)
    models, policy_md5 = [], md5_dir(local_copy(storage.model("policy")))
    for path in found:
        info = implicit_info(path)
        if info["ref_md5"] != policy_md5:
            log.warning(f"implicit PRM {path.name} was trained against another reference checkpoint: skipped")
            continue
        models.append((f"implicit_{path.name}", local_copy(path), info))  # transformers reads local folders
    return models


def _real_sets(config: BenchmarkScoresConfig, log) -> dict:
    """The real ProcessBench (its first rows per split) and PRMBench (its first rows per class) when found."""
    from prm_core.evaluation.benchmark_sets import load_processbench_dir
    from prm_core.evaluation.prmbench import load_prmbench

    real_dir = real_benchmark_dir(config.real_processbench, "processbench")
    real = load_processbench_dir(real_dir, config.real_processbench_rows)
    if real is None:
        log.warning(f"no real ProcessBench at {real_dir}: not scored (set `prm run --processbench DIR` or "
                    "benchmark_scores' config `real_processbench`)")
    prmbench_file = real_benchmark_dir(config.real_prmbench, "prmbench") / "subset400.jsonl"
    prmbench = load_prmbench(prmbench_file) if prmbench_file.exists() else None
    if prmbench is not None and config.real_prmbench_per_class:
        prmbench = prmbench.group_by("classification", maintain_order=True).head(config.real_prmbench_per_class)
    if prmbench is None:
        log.warning(f"no PRMBench at {prmbench_file}: not scored (set `prm run --prmbench DIR` or "
                    "benchmark_scores' config `real_prmbench`)")
    return {"real": real, "real_dir": real_dir, "prmbench": prmbench, "prmbench_file": prmbench_file}


def _sweep_plot(sweep: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    m = sweep["responses_per_problem"].to_list()
    ax.plot(m, sweep["bon_ref_r"].to_list(), "o-", label="best-of-N (w/ ref, r_k, min)")
    ax.plot(m, sweep["f1"].to_list(), "s-", label="ProcessBench-style F1")
    ax.axhline(sweep["majority"][0], color="gray", ls="--", label="majority vote")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("responses per question (CE)")
    ax.set_title("implicit PRM (CE): responses per question", fontsize=9)
    ax.legend(fontsize=7)
    return fig


@dg.asset(
    deps=[dg.AssetDep("prm_model", partition_mapping=ALL_PARTITIONS), dg.AssetDep("implicit_prm", partition_mapping=ALL_PARTITIONS),
          "benchmark_sets", "actprm_model"],
    code_version="4",  # 4: the PRM column is `prm` (was `label_set`)
    group_name="evaluation",
    kinds={"polars", "mlflow", "parquet"},
    description="Per PRM: ProcessBench-style F1 (test; τ from dev, and τ=0.5), best-of-N (min, last, weighted vote vs majority, pass@N, greedy), real ProcessBench F1, PRMBench PRMScore; per-sample step scores under reports/per_sample/.",
)
def benchmark_scores(context: dg.AssetExecutionContext, config: BenchmarkScoresConfig, storage: StorageResource,
                     tracking: TrackingResource) -> dg.MaterializeResult:
    from prm_core.evaluation.benchmark_scores import (
        comparison_summary,
        discriminative_scorer,
        implicit_prm_scores,
        implicit_scorer,
        score_prm,
    )
    from prm_core.evaluation.flops import flop_summary
    from prm_core.lineage.storage import local_copy, read_parquet, write_parquet

    have_sets = storage.table("benchmark_sets", "bon").exists()  # not for real data: no fresh problems with exact labels
    pb, bon = ((read_parquet(storage.table("benchmark_sets", n)) for n in ("processbench", "bon")) if have_sets
               else (None, None))
    found = _real_sets(config, context.log)
    samples = storage.root / "reports" / "per_sample"
    scored, summary, shared = [], {}, {}  # shared: head inputs of the PRMs' common frozen backbone, computed once
    with Timer() as t:
        for label_set in label_sets.get_partition_keys():
            path = prm_dir(storage, label_set)
            if not (path / "model.safetensors").exists():
                context.log.warning(f"no PRM for {label_set!r} at {path}: skipped")
                continue
            real_too = label_set in config.real_processbench_label_sets or not have_sets  # real data: its only benchmarks
            scored.append(score_prm(label_set, discriminative_scorer(path, config.separator, config.batch_size, shared), pb, bon,
                                    found["real"] if real_too else None, found["prmbench"] if real_too else None))
            log_scores(tracking, PRM_EXPERIMENT, training_info(path).get("mlflow_run_id"), scored[-1].row)
        if have_sets:
            models = _implicit_models(storage, context.log)
            implicit = implicit_prm_scores(local_copy(storage.model("policy")), models, pb, bon, config.batch_size)
            for (_, _, info), r in zip(models, implicit):
                log_scores(tracking, IMPLICIT_EXPERIMENT, info.get("mlflow_run_id"), r.row)
            scored += implicit
        else:  # real data: each implicit PRM on the real benchmarks, as the other PRMs
            policy = local_copy(storage.model("policy"))
            scored += [score_prm(name, implicit_scorer(policy, local, info, config.batch_size), None, None, found["real"],
                                 found["prmbench"]) for name, local, info in _implicit_models(storage, context.log)]
    for r in scored:
        summary.update(r.summary)
        for name, frame in r.samples.items():
            write_parquet(frame, samples / name / f"{r.row['prm']}.parquet")
    rows = [r.row for r in scored]
    actprm = storage.root / "reports" / "actprm_scores.parquet"
    if have_sets and actprm.exists():  # ActPRM (actprm_model: its own runs against full data and random) in the same table
        rows += read_parquet(actprm).to_dicts()
    if not rows:
        raise ValueError("no PRM to benchmark: materialize `prm_model` or `implicit_prm` first")
    if have_sets:
        costs = prm_costs(storage, rows, all_shards(context))
        for r in rows:  # all-in: what labelling the PRM's data generated, and every FLOP of it and of its training
            r["flops"], r["generated_tokens"] = costs.get(r["prm"], (r.get("flops"), r.get("generated_tokens")))
        summary.update(flop_summary(rows))
        summary.update(comparison_summary(rows))
    scores = pl.from_dicts(rows, infer_schema_length=None)
    real_table = pl.concat([r.real for r in scored if r.real is not None]) if any(r.real is not None for r in scored) else None
    prm_table = pl.concat([r.prmbench for r in scored if r.prmbench is not None]) if any(
        r.prmbench is not None for r in scored) else None
    write_parquet(scores, storage.root / "reports" / "benchmark_scores.parquet")
    if real_table is not None:
        write_parquet(real_table, storage.root / "reports" / "processbench_real.parquet")
    if prm_table is not None:
        write_parquet(prm_table, storage.root / "reports" / "prmbench.parquet")
    update_summary(storage.base_dir, {**summary, "benchmark.prms": len(rows)})
    reports = [storage.root / "reports" / f"{name}.parquet" for name in ("benchmark_scores", "processbench_real", "prmbench")]
    return dg.MaterializeResult(metadata={**_metadata(scores, real_table, prm_table, found, have_sets), "per_sample":
                                          dg.MetadataValue.path(str(samples)), **cost(t.seconds),
                                          **files_written(storage, [*reports, samples, summary_path(storage.base_dir)])})


def _metadata(scores: pl.DataFrame, real_table, prm_table, found: dict, have_sets: bool) -> dict:
    """The comparison table and plots, the real benchmarks' tables (or why they are missing)."""
    metadata = {"processbench_real": (table(real_table.with_columns(pl.col(pl.Float64).round(3))) if real_table is not None
                                      else dg.MetadataValue.text(f"not scored: no split files in {found['real_dir']}")),
                "prmbench": (table(prm_table.with_columns(pl.col(pl.Float64).round(3))) if prm_table is not None
                             else dg.MetadataValue.text(f"not scored: no {found['prmbench_file']}"))}
    if not have_sets:  # real data: the real ProcessBench only
        return {**metadata, "comparison": table(scores)}
    show = scores.select("prm", "generated_tokens", "flops", "f1", "f1_tau05", "tau", "acc_err", "acc_cor", "prm_min",
                         "prm_min_stderr", "prm_min_vote", "prm_last", "pair_order", "majority", "pass_at_n", "greedy")
    metadata.update(comparison=table(show.with_columns(pl.col(pl.Float64).exclude("flops").round(3))),
                    comparison_plot=plot_md(_plot(scores)))
    sweep = scores.filter(pl.col("prm").str.starts_with("implicit_ce")).sort("responses_per_problem")
    if sweep.height > 1:
        metadata["implicit_ce_responses_per_problem"] = plot_md(_sweep_plot(sweep))
    return metadata
