"""`benchmark_scores`: every PRM on the ProcessBench-style set (official F1), on best-of-N, and on the real ProcessBench."""


import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, plot_md, read_shards, table
from assets.common.partitions import all_shards, label_sets
from assets.common.resources import StorageResource, TrackingResource
from prm_core.lineage.summary import summary_path, update_summary

ALL_PARTITIONS = dg.AllPartitionMapping()


class BenchmarkConfig(dg.Config):
    real_processbench: str = Field(default="", description="folder of the real ProcessBench split files; empty: ../shared/data/processbench")
    real_processbench_label_sets: list[str] = Field(default=["scan"], description="PRMs scored on the real ProcessBench and PRMBench")
    real_prmbench: str = Field(default="", description="folder of PRMBench's subset400.jsonl; empty: ../shared/data/prmbench")
    real_prmbench_per_class: int = Field(default=12, description="PRMBench rows per error classification (its first "
                                                                 "ones; 0 = all 394)")
    real_processbench_rows: int = Field(default=100, description="rows per split scored (its first ones; 0 = all 3400, ~45 s per PRM on 2 cores)")
    separator: str = "\n"
    batch_size: int = Field(default=64, description="sequences per scoring forward pass (lower it for 7B backbones with features)")


def _real_dir(configured: str, name: str):
    """A real benchmark's folder: as configured, else `../shared/data/<name>` beside the project."""
    from assets.common.paths import project_root
    from prm_core.lineage.storage import as_path

    return as_path(configured) if configured else project_root().parent / "shared" / "data" / name


def _plot(scores: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    names = scores["label_set"].to_list()
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


def _params(path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())


def prm_flops(storage: StorageResource, rows: list[dict], keys: list[str]) -> dict[str, float]:
    """FLOPs of each MC-label PRM (prm_core.evaluation.flops): the responses and its MC rollouts, the backbone's
    training and the frozen feature forward over its corpus. The oracle's exact labels cost no generation."""
    import json

    from assets.prm_model import prm_dir, training_info
    from prm_core.evaluation.flops import mc_prm_cost
    from prm_core.lineage.storage import local_copy

    policy, backbone = local_copy(storage.model("policy")), local_copy(storage.model("prm_backbone"))
    report = backbone / "train_report.json"
    backbone_tokens = json.loads(report.read_text())["tokens"] if report.exists() else 0  # a pretrained backbone: 0
    responses = int(read_shards(storage.shard_tables("rollouts", keys))["num_tokens"].sum())
    costs = read_shards(storage.shard_tables("mc_costs", keys))
    mc_tokens = {m: int(t) for m, t in costs.group_by("method").agg(pl.col("tokens").sum()).iter_rows()}
    p_policy, p_backbone = _params(policy), _params(backbone)
    out = {}
    for r in rows:
        name = r["label_set"]
        if name.startswith("implicit_") or not (prm_dir(storage, name) / "training.json").exists():
            continue
        corpus_tokens = training_info(prm_dir(storage, name)).get("corpus_tokens", 0)
        out[name] = mc_prm_cost(responses, mc_tokens.get(name, 0), p_policy, backbone_tokens, corpus_tokens, p_backbone).total
    return out


def flop_summary(rows: list[dict]) -> dict:
    """cost_flops.<set>, implicit.cost_flops (CE's, the paper's headline) and F1 / best-of-N per TFLOP."""
    out = {}
    by = {r["label_set"]: r for r in rows if r.get("flops")}
    for name, r in by.items():
        key = name.replace("implicit_", "implicit.") if name.startswith("implicit_") else name
        if not name.startswith("implicit_"):
            out[f"cost_flops.{key}"] = r["flops"]
        best = r["bon_ref_r"] if name.startswith("implicit_") else r["prm_min"]
        out[f"efficiency.{key}.f1_per_tflop"] = r["f1"] / (r["flops"] / 1e12)
        out[f"efficiency.{key}.bon_per_tflop"] = best / (r["flops"] / 1e12)
    main = by.get("implicit_ce") or next((r for n, r in by.items() if n.startswith("implicit_")), None)
    if main is not None:
        out["implicit.cost_flops"] = main["flops"]
        if by.get("vanilla"):
            out["implicit.flops_over_vanilla"] = main["flops"] / by["vanilla"]["flops"]
    return out


def score_implicit(storage: StorageResource, config: "BenchmarkConfig", pb: pl.DataFrame, bon: pl.DataFrame, samples,
                   tracking: TrackingResource, log) -> list[dict]:
    """Every implicit PRM (and CE's responses-per-problem sweep) on both benchmarks; the reference's cumulative
    log-probs are computed once for all of them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assets.implicit_prm import EXPERIMENT, implicit_info
    from prm_core.evaluation.benchmark_scores import implicit_scores, per_sample
    from prm_core.lineage.storage import local_copy, md5_dir, write_parquet
    from prm_core.prm.implicit import step_values

    policy = local_copy(storage.model("policy"))
    found = sorted((p for p in storage.model_dir("implicit").glob("*") if (p / "model.safetensors").exists()), key=lambda p: p.name)
    rows, ref_values, policy_md5 = [], None, md5_dir(policy)
    for path in found:
        info = implicit_info(path)
        if info["ref_md5"] != policy_md5:
            log.warning(f"implicit PRM {path.name} was trained against another reference checkpoint: skipped")
            continue
        local = local_copy(path)  # transformers reads local folders (a data dir in object storage: a cached copy)
        tok = AutoTokenizer.from_pretrained(local)

        def values(model):
            return tuple(step_values(model, tok, f["prompt"].to_list(), f["steps"].to_list(), info["separator"], config.batch_size)
                         for f in (pb, bon))

        if ref_values is None:
            ref_values = values(AutoModelForCausalLM.from_pretrained(policy))
        theta = values(AutoModelForCausalLM.from_pretrained(local))
        row, pb_scores, bon_steps = implicit_scores(pb, (theta[0], ref_values[0]), bon, (theta[1], ref_values[1]), info["coef"])
        name = f"implicit_{path.name}"
        row.update(label_set=name, flops=info["flops"], responses_per_problem=info["responses_per_problem"])
        write_parquet(per_sample(pb, pb_scores, row["tau"]), samples / "processbench" / f"{name}.parquet")
        write_parquet(per_sample(bon, bon_steps), samples / "bon" / f"{name}.parquet")
        rows.append(row)
        if info.get("mlflow_run_id"):
            mlflow = tracking.experiment(EXPERIMENT)
            with mlflow.start_run(run_id=info["mlflow_run_id"]):
                mlflow.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return rows


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
          "benchmark_sets", "active_prm"],
    code_version="3",
    group_name="evaluation",
    kinds={"polars", "mlflow", "parquet"},
    description="Per PRM: ProcessBench-style F1 (test; τ from dev, and τ=0.5), best-of-N (min, last, weighted vote vs majority, pass@N, greedy), real ProcessBench F1, PRMBench PRMScore; per-sample step scores under reports/per_sample/.",
)
def benchmark_scores(context: dg.AssetExecutionContext, config: BenchmarkConfig, storage: StorageResource,
                     tracking: TrackingResource) -> dg.MaterializeResult:
    from transformers import AutoTokenizer

    from assets.prm_model import EXPERIMENT, prm_dir, training_info
    from prm_core.evaluation.benchmark_scores import bon_scores, per_sample, processbench_scores, split_f1
    from prm_core.evaluation.benchmark_sets import load_processbench
    from prm_core.evaluation.prmbench import load_prmbench, prmscore
    from prm_core.evaluation.processbench import choose_threshold
    from prm_core.lineage.storage import local_copy, read_parquet, write_parquet
    from prm_core.prm.discriminative import load_prm, score_steps

    have_sets = storage.table("benchmark_sets", "bon").exists()  # not for real data: no fresh problems with exact labels
    pb = read_parquet(storage.table("benchmark_sets", "processbench")) if have_sets else None
    bon = read_parquet(storage.table("benchmark_sets", "bon")) if have_sets else None
    real_dir = _real_dir(config.real_processbench, "processbench")
    real = pl.concat([load_processbench(f) for f in sorted(real_dir.glob("*.json"))]) if real_dir.exists() else None
    if real is None:
        context.log.warning(f"no real ProcessBench at {real_dir}: not scored (set `prm run --processbench DIR` or "
                            "benchmark_scores' config `real_processbench`)")
    prmbench_file = _real_dir(config.real_prmbench, "prmbench") / "subset400.jsonl"
    prmbench = load_prmbench(prmbench_file) if prmbench_file.exists() else None
    if prmbench is not None and config.real_prmbench_per_class:
        prmbench = prmbench.group_by("classification", maintain_order=True).head(config.real_prmbench_per_class)
    if prmbench is None:
        context.log.warning(f"no PRMBench at {prmbench_file}: not scored (set `prm run --prmbench DIR` or "
                            "benchmark_scores' config `real_prmbench`)")
    samples = storage.root / "reports" / "per_sample"
    if real is not None and config.real_processbench_rows:
        real = real.group_by("split", maintain_order=True).head(config.real_processbench_rows)
    rows, real_rows, prm_rows, summary = [], [], [], {}
    with Timer() as t:
        for label_set in label_sets.get_partition_keys():
            path = prm_dir(storage, label_set)
            if not (path / "model.safetensors").exists():
                context.log.warning(f"no PRM for {label_set!r} at {path}: skipped")
                continue
            model, tok = load_prm(path), AutoTokenizer.from_pretrained(local_copy(path))
            row = {"label_set": label_set}
            if have_sets:
                pb_scores = score_steps(model, tok, pb["prompt"].to_list(), pb["steps"].to_list(),
                                        config.separator, config.batch_size)
                bon_steps = score_steps(model, tok, bon["prompt"].to_list(), bon["steps"].to_list(),
                                        config.separator, config.batch_size)
                row.update(processbench_scores(pb, pb_scores), **bon_scores(bon, bon_steps))
                write_parquet(per_sample(pb, pb_scores, row["tau"]), samples / "processbench" / f"{label_set}.parquet")
                write_parquet(per_sample(bon, bon_steps), samples / "bon" / f"{label_set}.parquet")
            if real is not None and label_set in config.real_processbench_label_sets:
                real_scores = score_steps(model, tok, real["prompt"].to_list(), real["steps"].to_list(),
                                          config.separator, config.batch_size)
                gsm = [i for i, s in enumerate(real["split"]) if s == "gsm8k"] or list(range(real.height))
                tau = choose_threshold([real_scores[i] for i in gsm], [real["label"][i] for i in gsm])  # official: τ on GSM8K
                for name, at in (("gsm8k_tau", tau), ("tau05", 0.5)):
                    per = split_f1(real, real_scores, at).with_columns(label_set=pl.lit(label_set), threshold=pl.lit(name), tau=pl.lit(at))
                    real_rows.append(per)
                write_parquet(per_sample(real, real_scores, tau), samples / "processbench_real" / f"{label_set}.parquet")
                row["real_avg_f1"] = float(real_rows[-2]["f1"].mean())
                row["real_avg_f1_tau05"] = float(real_rows[-1]["f1"].mean())
                summary[f"processbench.real.avg_f1.{label_set}"] = row["real_avg_f1"]
                summary["processbench.real.rows"] = real.height
            if prmbench is not None and label_set in config.real_processbench_label_sets:
                pm_scores = score_steps(model, tok, prmbench["prompt"].to_list(), prmbench["steps"].to_list(),
                                        config.separator, config.batch_size)
                write_parquet(per_sample(prmbench, pm_scores, 0.5), samples / "prmbench" / f"{label_set}.parquet")
                prm_rows.append(prmscore(prmbench, pm_scores).with_columns(label_set=pl.lit(label_set)))
                row["prmbench_prmscore"] = float(prm_rows[-1].filter(pl.col("level") == "overall")["prmscore"][0])
                summary[f"prmbench.prmscore.{label_set}"] = row["prmbench_prmscore"]
                summary["prmbench.rows"] = prmbench.height
                summary["prmbench.out_of_range_rows"] = int((prmbench["out_of_range_errors"].list.len() > 0).sum())
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
        if have_sets:
            implicit_rows = score_implicit(storage, config, pb, bon, samples, tracking, context.log)
            rows += implicit_rows
            for r in implicit_rows:
                key = r["label_set"].replace("implicit_", "implicit.")
                summary.update({f"{key}.f1": r["f1"], f"{key}.f1_tau05": r["f1_tau05"], f"{key}.tau": r["tau"],
                                f"{key}.bon": r["bon_ref_r"], f"{key}.bon_vote": r["prm_min_vote"],
                                f"{key}.cost_flops": r["flops"],
                                **{f"{key}.bon_{v}": r[f"bon_{v}"] for v in ("ref_q", "noref_r", "noref_q")}})
    actprm = storage.root / "reports" / "actprm_scores.parquet"
    if have_sets and actprm.exists():  # ActPRM (active_prm: its own runs against full data and random) in the same table
        rows += read_parquet(actprm).to_dicts()
    if not rows:
        raise ValueError("no PRM to benchmark: materialize `prm_model` or `implicit_prm` first")
    if have_sets:
        flops = prm_flops(storage, rows, all_shards(context))
        for r in rows:
            r["flops"] = flops.get(r["label_set"], r.get("flops"))
        summary.update(flop_summary(rows))
    scores = pl.from_dicts(rows, infer_schema_length=None)
    real_table = pl.concat(real_rows) if real_rows else None
    prm_table = pl.concat(prm_rows) if prm_rows else None
    metadata = {"processbench_real": (table(real_table.with_columns(pl.col(pl.Float64).round(3))) if real_table is not None
                                      else dg.MetadataValue.text(f"not scored: no split files in {real_dir}")),
                "prmbench": (table(prm_table.with_columns(pl.col(pl.Float64).round(3))) if prm_table is not None
                             else dg.MetadataValue.text(f"not scored: no {prmbench_file}")),
                "per_sample": dg.MetadataValue.path(str(samples)),
                **cost(t.seconds)}
    if have_sets:
        first = rows[0]
        summary.update({"bon.majority": first["majority"], "bon.pass_at_n": first["pass_at_n"], "bon.pass_at_1": first["first"],
                        "bon.greedy": first["greedy"], "bon.problems": first["n_problems"], "bon.n": first["n"],
                        "bon.stderr": max(r.get("prm_min_stderr") or 0.0 for r in rows)})
        by = {r["label_set"]: r for r in rows}
        if "scan" in by and "oracle" in by and by["oracle"]["f1"] > 0:
            summary["prm.scan_over_oracle_f1"] = by["scan"]["f1"] / by["oracle"]["f1"]
        if "scan" in by and "vanilla" in by:
            summary["prm.scan_minus_vanilla_f1"] = by["scan"]["f1"] - by["vanilla"]["f1"]
        show = scores.select("label_set", "f1", "f1_tau05", "tau", "acc_err", "acc_cor", "prm_min", "prm_min_stderr",
                             "prm_min_vote", "prm_last", "pair_order", "majority", "pass_at_n", "greedy", "flops")
        metadata.update(comparison=table(show.with_columns(pl.col(pl.Float64).exclude("flops").round(3))),
                        comparison_plot=plot_md(_plot(scores)))
        sweep = scores.filter(pl.col("label_set").str.starts_with("implicit_ce")).sort("responses_per_problem")
        if sweep.height > 1:
            metadata["implicit_ce_responses_per_problem"] = plot_md(_sweep_plot(sweep))
    else:  # real data: the real ProcessBench only
        metadata["comparison"] = table(scores)
    write_parquet(scores, storage.root / "reports" / "benchmark_scores.parquet")
    if real_table is not None:
        write_parquet(real_table, storage.root / "reports" / "processbench_real.parquet")
    if prm_table is not None:
        write_parquet(prm_table, storage.root / "reports" / "prmbench.parquet")
    update_summary(storage.base_dir, summary)
    reports = [storage.root / "reports" / f"{name}.parquet" for name in ("benchmark_scores", "processbench_real", "prmbench")]
    metadata.update(files_written(storage, [*reports, samples, summary_path(storage.base_dir)]))
    return dg.MaterializeResult(metadata=metadata)
