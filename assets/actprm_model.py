"""`actprm_model`: ActPRM, pool-based, on the rollouts — ensemble heads on the frozen PRM backbone that buy judge
labels only where they are unsure, against full-data training and random selection at the same label budget."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, plot_md, read_shards, table
from assets.common.models import ACTPRM_EXPERIMENT, ACTPRM_REGISTERED, actprm_dir, register
from assets.common.paths import real_benchmark_dir
from assets.common.partitions import all_shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from prm_core.active.compare import CompareConfig
from prm_core.lineage.summary import summary_path, update_summary

CODE_VERSION = "1"
ALL_SHARDS = dg.AllPartitionMapping()
DEFAULTS = CompareConfig()


class ActprmModelConfig(dg.Config):
    seeds: int = Field(default=3, description="seeds of the comparison (mean ± s.e.); seed 0 chooses the thresholds on "
                                              "dev and its active PRM is released")
    heads: int = Field(default=DEFAULTS.heads, description="ensemble heads E (the paper: 32)")
    lr: float = DEFAULTS.lr
    batch_size: int = Field(default=DEFAULTS.batch_size, description="trajectories per active-learning batch (one optimizer step each)")
    reg_lambda: float = Field(default=DEFAULTS.reg_lambda, description="λ of the pull toward the heads' init")
    learning_probability: float = Field(default=DEFAULTS.learning_probability, description="Bernoulli(p) data mask per (head, trajectory)")
    grid_pred: list[float] = Field(default=list(DEFAULTS.grid_pred), description="δ_pred candidates (chosen on dev)")
    grid_std: list[float] = Field(default=list(DEFAULTS.grid_std), description="δ_std candidates (chosen on dev)")
    dev_tolerance: float = Field(default=DEFAULTS.dev_tolerance, description="thresholds: the fewest labels with dev F1 ≥ "
                                                                              "full-data dev F1 − this (none: the best dev F1)")
    mc_judge: bool = Field(default=False, description="also run seed 0's active pass with SCAN's MC labeller as the judge "
                                                      "(`prm run --actprm-mc-judge`: its judge calls are small and sequential)")
    separator: str = "\n"
    real_processbench: str = Field(default="", description="real data: the real ProcessBench folder its critique-judge "
                                                           "pass is scored on (τ on GSM8K); empty: ../shared/data/processbench")
    real_processbench_rows: int = Field(default=100, description="real data: rows per ProcessBench split (0 = all)")

    def compare(self) -> CompareConfig:
        return CompareConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.model_dump().items()
                                if k in CompareConfig.__dataclass_fields__})


def _plot(points: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for method, marker in (("full data", "s"), ("active", "o"), ("random", "x")):
        sub = points.filter(pl.col("method") == method)
        ax.scatter(sub["labels"].to_list(), sub["f1"].to_list(), marker=marker, label=method)
    ax.set_xlabel("judge labels used")
    ax.set_ylabel("ProcessBench-style F1 (test)")
    ax.set_title("ActPRM: F1 against judge labels (one point per seed)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _critique_pass(context: dg.AssetExecutionContext, config: ActprmModelConfig, storage: StorageResource, dom,
                   generator: GeneratorResource) -> dg.MaterializeResult:
    """Real data (no exact judge, no ProcessBench-style set of its own): one active pass on the rollouts with the LLM
    critique judge on the policy's engine, at the grid's first thresholds, scored on the real ProcessBench (dev: its
    GSM8K split, as the official τ; test: the others)."""
    from prm_core.active.compare import judge_pass
    from prm_core.active.features import StepFeatures, pool_of
    from prm_core.active.judges import CritiqueJudge
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.evaluation.benchmark_sets import load_processbench_dir
    from prm_core.lineage.storage import local_copy
    from prm_core.prm.ensemble import step_scores

    real_dir = real_benchmark_dir(config.real_processbench, "processbench")
    real = load_processbench_dir(real_dir, config.real_processbench_rows)
    if real is None:
        context.log.warning(f"actprm_model on real data needs the real ProcessBench (not at {real_dir}): skipped")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])})
    with Timer() as t:
        features = StepFeatures.load(local_copy(storage.model("prm_backbone")), config.separator)
        keys = all_shards(context)
        problems = read_shards(storage.shard_tables("problem_pool", keys))
        roll = read_shards(storage.shard_tables("rollouts", keys)).sort("shard", "problem_id", "sample_index")
        pool = pool_of(features, dom, problems, roll)
        dev_test = real.with_columns(split=pl.when(pl.col("split") == "gsm8k").then(pl.lit("dev")).otherwise(pl.lit("test")))
        x_test = features.of(dev_test)
        judge = CritiqueJudge(generator.get(storage.model("policy")))
        found = judge_pass(pool.inputs, pool.trajectories, judge, lambda heads: processbench_scores(dev_test, step_scores(heads, x_test)),
                           config.compare(), (config.grid_pred[0], config.grid_std[0]))
    summary = {"actprm.critique.f1": found["f1"], "actprm.critique.labels_used": found["labels"],
               "actprm.critique.calls": found["calls"], "actprm.critique.tokens": found["tokens"],
               "actprm.critique.dropped": found["dropped"], "actprm.critique.pool": len(pool.trajectories)}
    update_summary(storage.base_dir, summary)
    return dg.MaterializeResult(metadata={
        "critique_judge": dg.MetadataValue.json(summary), "processbench_rows": dev_test.height,
        **cost(t.seconds, generated_tokens=int(found["tokens"])), **files_written(storage, [summary_path(storage.base_dir)])})


@dg.asset(
    deps=[dg.AssetDep(a, partition_mapping=ALL_SHARDS) for a in ("rollouts", "problem_pool")]
    + ["prm_backbone", "benchmark_sets", "policy_model"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"pytorch", "mlflow", "parquet"},
    description="ActPRM pool-based: per batch, the ensemble's uncertain trajectories go to the judge and train the "
                "heads; vs full data and random selection at the same budget (seeds, thresholds chosen on dev).",
)
def actprm_model(context: dg.AssetExecutionContext, config: ActprmModelConfig, storage: StorageResource,
                 domain: DomainResource, generator: GeneratorResource, tracking: TrackingResource) -> dg.MaterializeResult:
    from prm_core.active.compare import MATCHED, TRAIN_KEYS, comparison_points, run_comparison, selection_rows
    from prm_core.active.features import StepFeatures, pool_of
    from prm_core.active.judges import scan_judge
    from prm_core.domains import has_exact_labeller
    from prm_core.evaluation.benchmark_scores import bon_scores, processbench_scores
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, local_copy, read_parquet, write_parquet

    dom = domain.get()
    if not has_exact_labeller(dom):
        return _critique_pass(context, config, storage, dom, generator)
    if not storage.table("benchmark_sets", "processbench").exists():
        context.log.warning("actprm_model needs the arith testbed (exact judge, ProcessBench-style dev/test): skipped")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])})
    with Timer() as t:
        backbone = local_copy(storage.model("prm_backbone"))
        features = StepFeatures.load(backbone, config.separator)
        keys = all_shards(context)
        problems = read_shards(storage.shard_tables("problem_pool", keys))
        roll = read_shards(storage.shard_tables("rollouts", keys)).sort("shard", "problem_id", "sample_index")
        pb, bon = (read_parquet(storage.table("benchmark_sets", n)) for n in ("processbench", "bon"))
        pool = pool_of(features, dom, problems, roll)
        cfg = config.compare()
        judge = (lambda: scan_judge(dom, generator.get(storage.model("policy")))) if config.mc_judge else None
        found = run_comparison(pool, features, pb, processbench_scores, dom, cfg, config.seeds, (bon, bon_scores), judge)
    main, mc = found.main, found.other_judge
    selection = pl.DataFrame(selection_rows(main.decisions, found.truth))
    write_parquet(selection, storage.root / "reports" / "actprm_selection.parquet")
    points = pl.DataFrame(comparison_points(found.results))
    summary = {f"actprm.{k}": v for k, v in found.summary().items()}
    update_summary(storage.base_dir, summary)
    forward = {"feature_tokens": pool.tokens}  # the frozen backbone's forward over the pool (benchmark_scores: FLOPs)
    rows = [{"prm": "actprm", **main.active, **found.bon, "labels": main.labels, **forward, "judge_tokens": found.judge_tokens},
            {"prm": "actprm_full_data", **main.full, "labels": main.pool, **forward, "judge_tokens": 0},
            {"prm": "actprm_random", **main.random, "labels": main.labels, **forward, "judge_tokens": 0}]
    write_parquet(pl.from_dicts(rows, infer_schema_length=None), storage.root / "reports" / "actprm_scores.parquet")
    out = actprm_dir(storage)
    with atomic_dir(out) as tmp:
        main.heads.save_pretrained(tmp)
        info = {"separator": config.separator, "seed": 0,
                "delta_pred": main.delta_pred, "delta_std": main.delta_std, "labels": main.labels, "pool": main.pool,
                "train": {k: getattr(cfg, k) for k in TRAIN_KEYS},
                "inputs": "[hidden ; LM features] of the backbone's feature PRM at each step separator"}
        (tmp / "actprm.json").write_text(json.dumps(info, indent=2))
        logged = register(tracking, ACTPRM_EXPERIMENT, "actprm", ("ensemble", {"heads": tmp, "backbone": backbone},
                                                                  {"separator": config.separator}, pool.example()),
                          ACTPRM_REGISTERED, context.run_id, "ActPRM ensemble heads (pool-based) on the PRM backbone's step inputs",
                          tags={"kind": "actprm"}, params=config.model_dump(),
                          metrics={k.replace("actprm.", ""): float(v) for k, v in summary.items() if not isinstance(v, str)})
        # paths and ids: run_info.json, so that actprm.json is reproducible
        update_run_info(tmp, {"backbone": str(storage.model("prm_backbone")), "dagster_run_id": context.run_id, **logged})
    chosen = selection.filter(pl.col("labelled"))
    return dg.MaterializeResult(metadata={
        "comparison": table(points.group_by("method").agg(labels=pl.col("labels").mean(), f1_mean=pl.col("f1").mean(),
                                                           f1_min=pl.col("f1").min(), f1_max=pl.col("f1").max()).sort("labels")),
        "f1_vs_labels": plot_md(_plot(points)),
        "selection": table(chosen.head(20)),
        "thresholds": dg.MetadataValue.json({"seeds": [{"seed": r.seed, "delta_pred": r.delta_pred, "delta_std": r.delta_std,
                                                        "labels": r.labels, "optimizer_steps": r.steps} for r in found.results]}),
        "matched": MATCHED,
        "mc_judge": dg.MetadataValue.json(mc) if mc else "not run (config mc_judge, `prm run --actprm-mc-judge`)",
        "mlflow_version": str(logged["mlflow_version"]),
        **cost(t.seconds, generated_tokens=int(mc["tokens"]) if mc else 0),
        **files_written(storage, [*(storage.root / "reports" / f"{name}.parquet" for name in ("actprm_selection", "actprm_scores")),
                                  out, summary_path(storage.base_dir)]),
    })
