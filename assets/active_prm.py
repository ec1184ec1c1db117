"""`active_prm`: ActPRM, pool-based, on the rollouts — ensemble heads on the frozen PRM backbone that buy judge
labels only where they are unsure, against full-data training and random selection at the same label budget."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, plot_md, read_shards, table
from assets.common.partitions import all_shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from prm_core.lineage.summary import summary_path, update_summary

CODE_VERSION = "1"
EXPERIMENT = "prm-foundry-actprm"
REGISTERED = "prm-foundry-actprm"
ALL_SHARDS = dg.AllPartitionMapping()


class ActivePRMConfig(dg.Config):
    seeds: int = Field(default=3, description="seeds of the comparison (mean ± s.e.); seed 0 chooses the thresholds on "
                                              "dev and its active PRM is released")
    heads: int = Field(default=16, description="ensemble heads E (the paper: 32)")
    lr: float = 3e-3
    batch_size: int = Field(default=16, description="trajectories per active-learning batch (one optimizer step each)")
    reg_lambda: float = Field(default=0.5, description="λ of the pull toward the heads' init")
    learning_probability: float = Field(default=1.0, description="Bernoulli(p) data mask per (head, trajectory)")
    grid_pred: list[float] = Field(default=[0.75, 0.8, 0.85], description="δ_pred candidates (chosen on dev)")
    grid_std: list[float] = Field(default=[0.03, 0.05, 0.1], description="δ_std candidates (chosen on dev)")
    dev_tolerance: float = Field(default=0.01, description="thresholds: the fewest labels with dev F1 ≥ full-data dev F1 − this")
    mc_judge: bool = Field(default=True, description="also run seed 0's active pass with SCAN's MC labeller as the judge")
    separator: str = "\n"


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


@dg.asset(
    deps=[dg.AssetDep(a, partition_mapping=ALL_SHARDS) for a in ("rollouts", "problem_pool")]
    + ["prm_backbone", "benchmark_sets", "policy_model"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"pytorch", "mlflow", "parquet"},
    description="ActPRM pool-based: per batch, the ensemble's uncertain trajectories go to the judge and train the "
                "heads; vs full data and random selection at the same budget (seeds, thresholds chosen on dev).",
)
def active_prm(context: dg.AssetExecutionContext, config: ActivePRMConfig, storage: StorageResource,
               domain: DomainResource, generator: GeneratorResource, tracking: TrackingResource) -> dg.MaterializeResult:
    import statistics

    from transformers import AutoTokenizer

    from assets.common.tracking import log_model
    from prm_core.active.compare import CompareConfig, compare_seed, new_heads
    from prm_core.active.judges import ExactJudge, MCJudge, Trajectory
    from prm_core.active.pool import active_pass, step_scores
    from prm_core.domains import has_exact_labeller
    from prm_core.domains.problems import prompts_frame
    from prm_core.evaluation.benchmark_scores import bon_scores, processbench_scores
    from prm_core.generation.sampling import SamplingSpec
    from prm_core.labels.mc_estimates import responses_of
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, local_copy, read_parquet, write_parquet
    from prm_core.prm.discriminative import init_prm, step_inputs
    from prm_core.prm.pyfunc import log_step_scorer

    dom = domain.get()
    if not has_exact_labeller(dom) or not storage.table("benchmark_sets", "processbench").exists():
        context.log.warning("active_prm needs the arith testbed (exact judge, ProcessBench-style dev/test): skipped")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])})
    with Timer() as t:
        backbone = local_copy(storage.model("prm_backbone"))
        tok = AutoTokenizer.from_pretrained(backbone)
        model = init_prm(backbone, tok, config.separator)
        keys = all_shards(context)
        pool = read_shards(storage.shard_tables("problem_pool", keys))
        prompts = dict(prompts_frame(dom, pool).iter_rows())
        roll = read_shards(storage.shard_tables("rollouts", keys)).sort("shard", "problem_id", "sample_index")
        pb, bon = (read_parquet(storage.table("benchmark_sets", n)) for n in ("processbench", "bon"))
        x_pool = step_inputs(model, tok, [prompts[p] for p in roll["problem_id"]], roll["steps"].to_list(), config.separator)
        x_pb, x_bon = (step_inputs(model, tok, f["prompt"].to_list(), f["steps"].to_list(), config.separator) for f in (pb, bon))
        trajs = [Trajectory(r.response_id, r.problem, r.steps) for r in responses_of(pool, roll)]
        cfg = CompareConfig(heads=config.heads, lr=config.lr, batch_size=config.batch_size, reg_lambda=config.reg_lambda,
                            learning_probability=config.learning_probability, grid_pred=tuple(config.grid_pred),
                            grid_std=tuple(config.grid_std), dev_tolerance=config.dev_tolerance)
        judges = []

        def exact():
            judges.append(ExactJudge(dom))
            return judges[-1]

        def evaluate(heads):
            return processbench_scores(pb, step_scores(heads, x_pb))

        main = compare_seed(x_pool, trajs, exact, evaluate, cfg, 0)  # thresholds chosen once, on dev, at seed 0
        results = [main] + [compare_seed(x_pool, trajs, exact, evaluate, cfg, seed, (main.delta_pred, main.delta_std))
                            for seed in range(1, config.seeds)]
        bon_row = bon_scores(bon, step_scores(main.heads, x_bon))
        truth = dict(zip((t.response_id for t in trajs), ExactJudge(dom).first_errors(trajs)))
        mc = None
        if config.mc_judge:  # judge (b): SCAN's MC labeller, at seed 0's thresholds; its rollout tokens are its cost
            judge = MCJudge(dom, generator.get(storage.model("policy")), SamplingSpec(temperature=0.7, top_p=0.8,
                                                                                      max_new_tokens=192, seed=7), k=8)
            heads = new_heads(x_pool, cfg, 0)
            decisions, _ = active_pass(heads, x_pool, trajs, judge, cfg.active(True, main.delta_pred, main.delta_std), 0)
            mc = {"f1": evaluate(heads)["f1"], "labels": sum(d.labelled for d in decisions), **vars(judge.cost)}
    selection = pl.DataFrame([{"response_id": d.response_id, "batch": d.batch, "selected": d.uncertainty.selected,
                               "aleatoric": d.uncertainty.aleatoric, "epistemic": d.uncertainty.epistemic,
                               "first_predicted_error": d.uncertainty.first_predicted_error,
                               "max_std": d.uncertainty.max_std, "min_confidence": d.uncertainty.min_confidence,
                               "labelled": d.labelled, "judge_first_error": d.judge_first_error,
                               "true_first_error": truth[d.response_id]} for d in main.decisions])
    write_parquet(selection, storage.root / "reports" / "active_selection.parquet")
    points = pl.DataFrame([{"seed": r.seed, "method": m, "labels": n, "f1": res["f1"]} for r in results
                           for m, n, res in (("full data", r.pool, r.full), ("active", r.labels, r.active), ("random", r.labels, r.random))])

    def mean_se(values):
        return statistics.mean(values), (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0)

    (f1, f1_se), (full_f1, _), (rnd_f1, rnd_se) = (mean_se([getattr(r, k)["f1"] for r in results])
                                                         for k in ("active", "full", "random"))
    labels = statistics.mean(r.labels for r in results)
    chosen = selection.filter(pl.col("labelled"))
    summary = {"actprm.f1": f1, "actprm.f1_se": f1_se, "actprm.labels_used": labels, "actprm.label_fraction": labels / len(trajs),
               "actprm.full_data_f1": full_f1, "actprm.random_f1": rnd_f1, "actprm.random_f1_se": rnd_se,
               "actprm.bon": bon_row["prm_min"], "actprm.judge_tokens": sum(j.cost.tokens for j in judges),
               "actprm.seeds": len(results), "actprm.delta_pred": main.delta_pred, "actprm.delta_std": main.delta_std,
               "actprm.selected_error_rate": float((chosen["true_first_error"] >= 0).mean()) if chosen.height else 0.0,
               "actprm.pool_error_rate": float((selection["true_first_error"] >= 0).mean())}
    if mc is not None:
        summary.update({"actprm.mc_judge.f1": mc["f1"], "actprm.mc_judge.labels_used": mc["labels"],
                        "actprm.mc_judge.tokens": mc["tokens"], "actprm.mc_judge.dropped": mc["dropped"]})
    update_summary(storage.base_dir, summary)
    rows = [{"label_set": "actprm", **main.active, **bon_row, "labels": main.labels},
            {"label_set": "actprm_full_data", **main.full, "labels": main.pool},
            {"label_set": "actprm_random", **main.random, "labels": main.labels}]
    write_parquet(pl.from_dicts(rows, infer_schema_length=None), storage.root / "reports" / "actprm_scores.parquet")
    out = storage.model_dir("active_prm")
    with atomic_dir(out) as tmp:
        main.heads.save_pretrained(tmp)
        info = {"separator": config.separator, "seed": 0,
                "delta_pred": main.delta_pred, "delta_std": main.delta_std, "labels": main.labels, "pool": main.pool,
                "train": {k: getattr(cfg, k) for k in ("heads", "lr", "batch_size", "reg_lambda", "learning_probability")},
                "inputs": "[hidden ; LM features] of the backbone's feature PRM at each step separator"}
        (tmp / "actprm.json").write_text(json.dumps(info, indent=2))
        mlflow = tracking.experiment(EXPERIMENT)
        with mlflow.start_run(run_name="actprm"):
            mlflow.set_tags({"dagster_run_id": context.run_id, "kind": "actprm"})
            mlflow.log_params({k: v for k, v in config.model_dump().items()})
            mlflow.log_metrics({k.replace("actprm.", ""): float(v) for k, v in summary.items()})
            scorer = log_step_scorer("ensemble", {"heads": tmp, "backbone": backbone}, {"separator": config.separator},
                                     (prompts[roll["problem_id"][0]], roll["steps"][0].to_list()))
            logged = log_model(mlflow, scorer.model_uri, REGISTERED, context.run_id,
                               "ActPRM ensemble heads (pool-based) on the PRM backbone's step inputs")
        version = logged["mlflow_version"]  # paths and ids: run_info.json, so that actprm.json is reproducible
        update_run_info(tmp, {"backbone": str(storage.model("prm_backbone")), "dagster_run_id": context.run_id, **logged})
    return dg.MaterializeResult(metadata={
        "comparison": table(points.group_by("method").agg(labels=pl.col("labels").mean(), f1_mean=pl.col("f1").mean(),
                                                           f1_min=pl.col("f1").min(), f1_max=pl.col("f1").max()).sort("labels")),
        "f1_vs_labels": plot_md(_plot(points)),
        "selection": table(chosen.head(20)),
        "thresholds": dg.MetadataValue.json({"seeds": [{"seed": r.seed, "delta_pred": r.delta_pred, "delta_std": r.delta_std,
                                                        "labels": r.labels} for r in results]}),
        "mc_judge": dg.MetadataValue.json(mc or {}),
        "mlflow_version": str(version),
        **cost(t.seconds, generated_tokens=int(mc["tokens"]) if mc else 0),
        **files_written(storage, [*(storage.root / "reports" / f"{name}.parquet" for name in ("active_selection", "actprm_scores")),
                                  out, summary_path(storage.base_dir)]),
    })
