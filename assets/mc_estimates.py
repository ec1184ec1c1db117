"""`mc_estimates`: Monte Carlo step values by vanilla MC, SCAN (sequential) and SCAN with binary search.

Chunked and resumable: each (shard, method, chunk of responses) is written as soon as it is done, with its own
seed, so a killed run recomputes at most the chunk in flight and ends with the same table.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import compute_or_reuse, mc_seconds, read_shards, record_partition, table
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from prm_core.labels.mc_estimates import METHODS, ROLLOUT_SPEC, AnnotationConfig
from prm_core.lineage.run_info import update_run_info
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet, write_parquet
from prm_core.lineage.summary import update_summary

CODE_VERSION = "3"  # 3: scan rolls out the last step (SCAN's code)
METHOD_CODE = {"scan": "3"}  # a chunk's code version: only scan's chunks changed in 3 (the others' stay valid)


class McEstimatesConfig(dg.Config):
    methods: list[str] = Field(default=list(METHODS), description="vanilla, scan, scan_binary")
    k: int = Field(default=AnnotationConfig.k, description="rollouts per step prefix")
    temperature: float = Field(default=ROLLOUT_SPEC.temperature, description="rollout temperature (SCAN's paper table)")
    top_p: float = Field(default=ROLLOUT_SPEC.top_p, description="rollout top-p (SCAN's paper table)")
    max_new_tokens: int = ROLLOUT_SPEC.max_new_tokens
    sc_threshold: float = Field(default=AnnotationConfig.sc_threshold, description="SCAN keeps questions with self-confidence >= this")
    d: int = Field(default=AnnotationConfig.d, description="SCAN's soft-label window: the d steps before the detected error get min(c_t/SC, 1); "
                                       "scan_binary rolls them out too, and denoised_labels uses this d")
    scan_rollout_last: bool = Field(default=AnnotationConfig.scan_rollout_last, description="scan: roll out the last step "
                                    "too, as SCAN's code does (an incorrect response whose completions recover is dropped, "
                                    "`dropped_no_zero`); off: c_T is the response's own grade")
    chunk_size: int = Field(default=128, description="responses per resumable chunk")
    seed: int = 0
    reuse: bool = True


def _chunk_path(storage: StorageResource, shard: str, method: str, index: int):
    return storage.root / "mc_estimates_chunks" / shard / f"{method}-{index:04d}.parquet"


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["rollouts", "self_confidence", "policy_model", "problem_pool"],
    code_version=CODE_VERSION,
    group_name="labels",
    kinds={"vllm", "parquet"},
    check_specs=[dg.AssetCheckSpec("rollouts_add_up", asset="mc_estimates",
                                   description="per-step rollout counts add up to the recorded cost of every chunk")],
    description="c_t per (response, step) and method; rollouts share prefixes and are batched across responses and steps.",
)
def mc_estimates(context: dg.AssetExecutionContext, config: McEstimatesConfig, storage: StorageResource,
                 domain: DomainResource, generator: GeneratorResource) -> dg.MaterializeResult:
    from prm_core.labels.audit import cost_summary
    from prm_core.lineage.storage import md5_dir

    policy_md5 = md5_dir(storage.model("policy"))
    frames, cost_rows, mismatches = [], [], []
    for shard in context.partition_keys:
        shard_df, shard_costs = _label_shard(storage, domain, generator, config, shard, policy_md5, mismatches)
        write_parquet(shard_df, storage.table("mc_estimates", shard))
        # seconds and reuse describe this run: run info
        write_parquet(pl.DataFrame(shard_costs).drop("seconds", "reused"), storage.table("mc_costs", shard))
        update_run_info(storage.root / "mc_costs", {shard: [{k: r[k] for k in ("method", "chunk", "seconds", "reused")}
                                                            for r in shard_costs]})
        frames.append(shard_df)
        cost_rows += shard_costs
        _record_shard(context, storage, shard, shard_df, pl.DataFrame(shard_costs))
    batch = pl.concat(frames)
    costs = pl.DataFrame(cost_rows)
    keys = all_shards(context)
    sc_tokens = int(read_shards(storage.shard_tables("self_confidence", keys))["tokens"].sum())
    summary, all_in = cost_summary(read_shards(storage.shard_tables("mc_costs", keys)), sc_tokens, mc_seconds(storage, keys))
    update_summary(storage.base_dir, summary)
    return dg.MaterializeResult(
        metadata={  # every partition's event gets these: the run's chunks, and the cost ratios over all shards
            "run/chunks_computed": int((~costs["reused"]).sum()),
            "run/chunks_reused": int(costs["reused"].sum()),
            "all_shards/cost_vs_vanilla_all_in": table(all_in),
        },
        data_version=dg.DataVersion(frame_md5(batch)),
        check_results=[dg.AssetCheckResult(check_name="rollouts_add_up", passed=not mismatches,
                                           metadata={"mismatches": "; ".join(mismatches) or "none"})],
    )


def _label_shard(storage: StorageResource, domain: DomainResource, generator: GeneratorResource,
                 config: McEstimatesConfig, shard: str, policy_md5: str,
                 mismatches: list[str]) -> tuple[pl.DataFrame, list[dict]]:
    """One shard's MC rows, every method chunk by chunk (a chunk computed before with the same inputs is kept), and
    each chunk's recorded cost; a chunk whose rows disagree with its cost goes to `mismatches`."""
    from prm_core.generation.sampling import SamplingSpec, derive_seed
    from prm_core.labels.mc_estimates import annotate, responses_of

    dom, policy = domain.get(), storage.model("policy")
    ann = AnnotationConfig(k=config.k, sc_threshold=config.sc_threshold, d=config.d, scan_rollout_last=config.scan_rollout_last)
    pool = read_parquet(storage.table("problem_pool", shard))
    roll = read_parquet(storage.table("rollouts", shard))  # every method labels all N responses of every problem
    sc_table = read_parquet(storage.table("self_confidence", shard))
    sc = dict(zip(sc_table["problem_id"], sc_table["self_confidence"]))
    inputs = {"rollouts": md5_file(storage.table("rollouts", shard)), "sc": md5_file(storage.table("self_confidence", shard)),
              "policy": policy_md5}
    responses = responses_of(pool, roll)
    frames, cost_rows = [], []
    for method in config.methods:
        for index in range(0, max(1, -(-len(responses) // config.chunk_size))):
            chunk = responses[index * config.chunk_size:(index + 1) * config.chunk_size]
            path = _chunk_path(storage, shard, method, index)
            only_scan = set() if method == "scan" else {"scan_rollout_last"}  # the other methods' chunks stay valid
            fingerprint = {"code": METHOD_CODE.get(method, "2"), "method": method, "inputs": inputs,
                           "config": config.model_dump(exclude={"reuse", "methods", *only_scan})}
            cost_path = path.with_name(path.stem + ".cost.parquet")
            spec = SamplingSpec(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens,
                                seed=derive_seed(config.seed, f"{shard}/{method}/{index}"))

            def label_chunk(chunk=chunk, spec=spec, cost_path=cost_path, method=method):
                df, c = annotate(method, dom, generator.get(policy), chunk, sc, ann, spec)
                # the cost is written before the chunk, so a kept chunk always has its cost
                write_parquet(pl.DataFrame({"seconds": [c.seconds], "rollouts": [c.rollouts], "tokens": [c.tokens],
                                            "grade_timeouts": [c.grade_timeouts]}), cost_path)
                return df.with_columns(shard=pl.lit(shard))

            df, reused = compute_or_reuse(path, fingerprint, config.reuse and cost_path.exists(), label_chunk)
            recorded = read_parquet(cost_path).row(0, named=True)
            if int(df["rollouts"].sum()) != recorded["rollouts"] or int(df["rollout_tokens"].sum()) != recorded["tokens"]:
                mismatches.append(f"{shard}/{method}/{index}: rows {int(df['rollouts'].sum())} != cost {recorded['rollouts']}")
            frames.append(df)
            cost_rows.append({"shard": shard, "method": method, "chunk": index, "responses": df["response_id"].n_unique(),
                              "rollouts": int(df["rollouts"].sum()), "tokens": int(df["rollout_tokens"].sum()),
                              "grade_timeouts": recorded.get("grade_timeouts", 0), "seconds": round(recorded["seconds"], 3),
                              "reused": reused})
    return pl.concat(frames), cost_rows


def _record_shard(context, storage: StorageResource, shard: str, df: pl.DataFrame, costs: pl.DataFrame) -> None:
    """One shard's metadata; its cost is every chunk's recorded cost, a kept chunk's as it was when computed."""
    record_partition(
        context, storage, shard, df, [storage.table("mc_estimates", shard), storage.table("mc_costs", shard)],
        float(costs["seconds"].sum()), generated_tokens=int(costs["tokens"].sum()), rollouts=int(costs["rollouts"].sum()),
        reused=bool(costs["reused"].all()), chunks_computed=int((~costs["reused"]).sum()),
        chunks_reused=int(costs["reused"].sum()),
        responses_by_method=table(df.group_by("method").agg(responses=pl.col("response_id").n_unique(), steps=pl.len(),
                                                            valued=pl.col("mc_value").is_not_null().sum()).sort("method")),
        cost_by_method=table(costs.group_by("method").agg(pl.col("rollouts", "tokens", "grade_timeouts", "seconds").sum(),
                                                          chunks=pl.len(), reused=pl.col("reused").sum()).sort("method")))
