"""`actprm_filtered_pool`: ActPRM's one-shot setting — the actively trained ensemble scores a large fresh trajectory
pool, keeps the uncertain part, the judge labels only that, and a final PRM is trained on it."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, table
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from prm_core.lineage.summary import summary_path, update_summary

CODE_VERSION = "1"
FRESH_POOL_SEED = 50_000_000  # fresh problems: disjoint from the pool, training (10M+), eval (20M+), benchmark (30M+, 40M+)


class FilteredPoolConfig(dg.Config):
    problems: int = Field(default=250, description="fresh problems; N responses each make the pool to filter")
    samples: int = Field(default=8, description="responses per fresh problem")
    max_new_tokens: int = 192
    seed: int = 0
    separator: str = "\n"


@dg.asset(
    deps=["active_prm", "policy_model", "prm_backbone", "benchmark_sets"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"vllm", "pytorch", "mlflow", "parquet"},
    description="One-shot ActPRM: score a fresh pool with the active ensemble, keep the uncertain trajectories, judge "
                "them, train the final ensemble PRM on them; its F1 beside the active and full-data ones.",
)
def actprm_filtered_pool(context: dg.AssetExecutionContext, config: FilteredPoolConfig, storage: StorageResource,
                         domain: DomainResource, generator: GeneratorResource,
                         tracking: TrackingResource) -> dg.MaterializeResult:
    from transformers import AutoTokenizer

    from assets.active_prm import EXPERIMENT
    from assets.common.tracking import log_model
    from prm_core.active.compare import CompareConfig, new_heads
    from prm_core.active.judges import ExactJudge, Trajectory, hard_labels
    from prm_core.active.pool import step_scores, train_on
    from prm_core.active.uncertainty import select
    from prm_core.domains import has_exact_labeller
    from prm_core.domains.problems import problems_frame, prompts_frame
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.generation.rollouts import sample_rollouts
    from prm_core.generation.sampling import SamplingSpec
    from prm_core.labels.mc_estimates import responses_of
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, local_copy, read_parquet, write_parquet
    from prm_core.prm.discriminative import init_prm, step_inputs
    from prm_core.prm.ensemble import EnsembleHeads, probabilities
    from prm_core.prm.pyfunc import log_step_scorer

    dom = domain.get()
    active_dir = storage.model_dir("active_prm")
    if not has_exact_labeller(dom) or not (active_dir / "actprm.json").exists():
        context.log.warning("actprm_filtered_pool needs the arith testbed and a trained `active_prm`: skipped")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])})
    info = json.loads((active_dir / "actprm.json").read_text())
    with Timer() as t:
        pool = problems_frame(dom.problems(config.problems, FRESH_POOL_SEED + config.seed), "fresh")
        spec = SamplingSpec(n=config.samples, temperature=1.0, max_new_tokens=config.max_new_tokens, seed=config.seed)
        roll = sample_rollouts(dom, generator.get(storage.model("policy")), pool, spec)
        backbone = local_copy(storage.model("prm_backbone"))
        tok = AutoTokenizer.from_pretrained(backbone)
        model = init_prm(backbone, tok, config.separator)
        prompts = dict(prompts_frame(dom, pool).iter_rows())
        x = step_inputs(model, tok, [prompts[p] for p in roll["problem_id"]], roll["steps"].to_list(), config.separator)
        active = EnsembleHeads.from_pretrained(local_copy(active_dir))
        unc = select([probabilities(active, xi) for xi in x], info["delta_pred"], info["delta_std"])
        kept = [i for i, u in enumerate(unc) if u.selected]
        trajs = [Trajectory(r.response_id, r.problem, r.steps) for r in responses_of(pool, roll)]
        judge = ExactJudge(dom)
        answers = judge.first_errors([trajs[i] for i in kept])
        labelled = [(i, a) for i, a in zip(kept, answers) if a is not None]
        cfg = CompareConfig(**info["train"])  # the final PRM trains as the active one did
        final = new_heads(x, cfg, config.seed)
        train_on(final, [x[i] for i, _ in labelled], [hard_labels(a, len(trajs[i].steps)) for i, a in labelled],
                 cfg.active(), config.seed)
        pb = read_parquet(storage.table("benchmark_sets", "processbench"))
        x_pb = step_inputs(model, tok, pb["prompt"].to_list(), pb["steps"].to_list(), config.separator)
        scores = processbench_scores(pb, step_scores(final, x_pb))
    truth = ExactJudge(dom).first_errors(trajs)  # the audit only: how often the kept part really holds an error
    kept_error = sum(truth[i] >= 0 for i in kept) / max(1, len(kept))
    summary = {"actprm.filtered_pool.responses": len(trajs), "actprm.filtered_pool.kept": len(kept),
               "actprm.filtered_pool.kept_fraction": len(kept) / max(1, len(trajs)), "actprm.filtered_pool.f1": scores["f1"],
               "actprm.filtered_pool.kept_error_rate": kept_error,
               "actprm.filtered_pool.pool_error_rate": sum(v >= 0 for v in truth) / max(1, len(truth)),
               "actprm.filtered_pool.generated_tokens": int(roll["num_tokens"].sum())}
    update_summary(storage.base_dir, summary)
    write_parquet(roll.with_columns(kept=pl.Series([u.selected for u in unc])),
                  storage.root / "reports" / "actprm_filtered_pool.parquet")
    out = storage.model_dir("actprm_final")
    with atomic_dir(out) as tmp:
        final.save_pretrained(tmp)
        (tmp / "actprm.json").write_text(json.dumps({**info, "setting": "one-shot filtered pool", "kept": len(kept),
                                                     "responses": len(trajs)}, indent=2))
        mlflow = tracking.experiment(EXPERIMENT)
        with mlflow.start_run(run_name="actprm-final"):
            mlflow.set_tags({"dagster_run_id": context.run_id, "kind": "actprm_final"})
            mlflow.log_params(config.model_dump())
            mlflow.log_metrics({k.replace("actprm.filtered_pool.", ""): float(v) for k, v in summary.items()})
            scorer = log_step_scorer("ensemble", {"heads": tmp, "backbone": backbone}, {"separator": config.separator},
                                     (prompts[roll["problem_id"][0]], roll["steps"][0].to_list()))
            logged = log_model(mlflow, scorer.model_uri, "prm-foundry-actprm-final", context.run_id,
                               "ActPRM final PRM (one-shot filtered pool) on the PRM backbone's step inputs")
        update_run_info(tmp, {"dagster_run_id": context.run_id, **logged})  # ids: run info, actprm.json is reproducible
    return dg.MaterializeResult(metadata={
        "summary": table(pl.DataFrame([summary])),
        "thresholds": dg.MetadataValue.json({"delta_pred": info["delta_pred"], "delta_std": info["delta_std"]}),
        **cost(t.seconds, generated_tokens=int(roll["num_tokens"].sum()), rollouts=len(trajs)),
        **files_written(storage, [storage.root / "reports" / "actprm_filtered_pool.parquet", out,
                                  summary_path(storage.base_dir)]),
    })
