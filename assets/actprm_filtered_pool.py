"""`actprm_filtered_pool`: ActPRM's one-shot setting — the actively trained ensemble scores a large fresh trajectory
pool, keeps the uncertain part, the judge labels only that, and a final PRM is trained on it."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, table
from assets.common.models import ACTPRM_EXPERIMENT, ACTPRM_FINAL_REGISTERED, actprm_dir, actprm_info, register
from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
from prm_core.active.filtered_pool import FreshPool
from prm_core.lineage.summary import summary_path, update_summary

CODE_VERSION = "1"
FRESH = FreshPool()


class ActprmFilteredPoolConfig(dg.Config):
    problems: int = Field(default=FRESH.problems, description="fresh problems; N responses each make the pool to filter")
    samples: int = Field(default=FRESH.samples, description="responses per fresh problem")
    max_new_tokens: int = FRESH.max_new_tokens
    seed: int = FRESH.seed
    separator: str = "\n"


@dg.asset(
    deps=["actprm_model", "policy_model", "prm_backbone", "benchmark_sets"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"vllm", "pytorch", "mlflow", "parquet"},
    description="One-shot ActPRM: score a fresh pool with the active ensemble, keep the uncertain trajectories, judge "
                "them, train the final ensemble PRM on them; its F1 beside the active and full-data ones.",
)
def actprm_filtered_pool(context: dg.AssetExecutionContext, config: ActprmFilteredPoolConfig, storage: StorageResource,
                         domain: DomainResource, generator: GeneratorResource,
                         tracking: TrackingResource) -> dg.MaterializeResult:
    from prm_core.active.filtered_pool import filtered_pool
    from prm_core.domains import has_exact_labeller
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, local_copy, read_parquet, write_parquet
    from prm_core.prm.ensemble import EnsembleHeads

    dom = domain.get()
    active = actprm_dir(storage)
    if not has_exact_labeller(dom) or not (active / "actprm.json").exists():
        context.log.warning("actprm_filtered_pool needs the arith testbed and a trained `actprm_model`: skipped")
        return dg.MaterializeResult(metadata={"skipped": True, **files_written(storage, [])})
    info = actprm_info(active)
    with Timer() as t:
        fresh = FreshPool(config.problems, config.samples, config.max_new_tokens, config.seed)
        backbone = local_copy(storage.model("prm_backbone"))
        found = filtered_pool(dom, generator.get(storage.model("policy")), backbone,
                              EnsembleHeads.from_pretrained(local_copy(active)), info,
                              read_parquet(storage.table("benchmark_sets", "processbench")), processbench_scores,
                              fresh, config.separator)
    summary = {f"actprm.filtered_pool.{k}": v for k, v in found.summary().items()}
    update_summary(storage.base_dir, summary)
    write_parquet(found.rollouts.with_columns(kept=pl.Series([u.selected for u in found.uncertainty])),
                  storage.root / "reports" / "actprm_filtered_pool.parquet")
    out = storage.model_dir("actprm_final")
    with atomic_dir(out) as tmp:
        found.heads.save_pretrained(tmp)
        (tmp / "actprm.json").write_text(json.dumps({**info, "setting": "one-shot filtered pool", "kept": len(found.kept),
                                                     "responses": len(found.pool.trajectories)}, indent=2))
        logged = register(tracking, ACTPRM_EXPERIMENT, "actprm-final",
                          ("ensemble", {"heads": tmp, "backbone": backbone}, {"separator": config.separator},
                           found.pool.example()),
                          ACTPRM_FINAL_REGISTERED, context.run_id,
                          "ActPRM final PRM (one-shot filtered pool) on the PRM backbone's step inputs",
                          tags={"kind": "actprm_final"}, params=config.model_dump(),
                          metrics={k.replace("actprm.filtered_pool.", ""): float(v) for k, v in summary.items()})
        update_run_info(tmp, {"dagster_run_id": context.run_id, **logged})  # ids: run info, actprm.json is reproducible
    return dg.MaterializeResult(metadata={
        "summary": table(pl.DataFrame([summary])),
        "thresholds": dg.MetadataValue.json({"delta_pred": info["delta_pred"], "delta_std": info["delta_std"]}),
        **cost(t.seconds, generated_tokens=summary["actprm.filtered_pool.generated_tokens"], rollouts=len(found.pool.trajectories)),
        **files_written(storage, [storage.root / "reports" / "actprm_filtered_pool.parquet", out,
                                  summary_path(storage.base_dir)]),
    })
