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
from prm_core.lineage.run_info import update_run_info
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet, write_parquet
from prm_core.lineage.summary import update_summary

CODE_VERSION = "2"


class MCConfig(dg.Config):
    methods: list[str] = Field(default=["vanilla", "scan", "scan_binary"], description="vanilla, scan, scan_binary")
    k: int = Field(default=8, description="rollouts per step prefix")
    temperature: float = Field(default=0.7, description="rollout temperature (SCAN's paper table)")
    top_p: float = Field(default=0.8, description="rollout top-p (SCAN's paper table)")
    max_new_tokens: int = 192
    sc_threshold: float = Field(default=0.75, description="SCAN keeps questions with self-confidence >= this")
    d: int = Field(default=2, description="SCAN's soft-label window: the d steps before the detected error get min(c_t/SC, 1); "
                                       "scan_binary rolls them out too, and denoised_labels uses this d")
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
def mc_estimates(context: dg.AssetExecutionContext, config: MCConfig, storage: StorageResource,
                 domain: DomainResource, generator: GeneratorResource) -> dg.MaterializeResult:
    from prm_core.generation.sampling import SamplingSpec, derive_seed
    from prm_core.labels.audit import cost_table
    from prm_core.labels.mc_estimates import AnnotationConfig, annotate, responses_of
    from prm_core.lineage.storage import md5_dir

    dom, policy = domain.get(), storage.model("policy")
    policy_md5 = md5_dir(policy)
    ann = AnnotationConfig(k=config.k, sc_threshold=config.sc_threshold, d=config.d)
    frames, cost_rows, mismatches = [], [], []
    for shard in context.partition_keys:
        pool = read_parquet(storage.table("problem_pool", shard))
        roll = read_parquet(storage.table("rollouts", shard))  # every method labels all N responses of every problem
        sc_table = read_parquet(storage.table("self_confidence", shard))
        sc = dict(zip(sc_table["problem_id"], sc_table["self_confidence"]))
        inputs = {"rollouts": md5_file(storage.table("rollouts", shard)), "sc": md5_file(storage.table("self_confidence", shard)),
                  "policy": policy_md5}
        responses = responses_of(pool, roll)
        shard_frames = []
        for method in config.methods:
            for index in range(0, max(1, -(-len(responses) // config.chunk_size))):
                chunk = responses[index * config.chunk_size:(index + 1) * config.chunk_size]
                path = _chunk_path(storage, shard, method, index)
                fingerprint = {"code": CODE_VERSION, "method": method, "inputs": inputs,
                               "config": config.model_dump(exclude={"reuse", "methods"})}
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
                seconds = recorded["seconds"]
                if int(df["rollouts"].sum()) != recorded["rollouts"] or int(df["rollout_tokens"].sum()) != recorded["tokens"]:
                    mismatches.append(f"{shard}/{method}/{index}: rows {int(df['rollouts'].sum())} != cost {recorded['rollouts']}")
                shard_frames.append(df)
                cost_rows.append({"shard": shard, "method": method, "chunk": index, "responses": df["response_id"].n_unique(),
                                  "rollouts": int(df["rollouts"].sum()), "tokens": int(df["rollout_tokens"].sum()),
                                  "grade_timeouts": recorded.get("grade_timeouts", 0), "seconds": round(seconds, 3),
                                  "reused": reused})
        shard_df = pl.concat(shard_frames)
        write_parquet(shard_df, storage.table("mc_estimates", shard))
        shard_costs = [r for r in cost_rows if r["shard"] == shard]  # seconds and reuse describe this run: run info
        write_parquet(pl.DataFrame(shard_costs).drop("seconds", "reused"), storage.table("mc_costs", shard))
        update_run_info(storage.root / "mc_costs", {shard: [{k: r[k] for k in ("method", "chunk", "seconds", "reused")}
                                                            for r in shard_costs]})
        frames.append(shard_df)
        _record_shard(context, storage, shard, shard_df, pl.DataFrame(shard_costs))
    batch = pl.concat(frames)
    costs = pl.DataFrame(cost_rows)
    keys = all_shards(context)
    all_costs = read_shards(storage.shard_tables("mc_costs", keys))
    per_method = all_costs.group_by("method", maintain_order=True).agg(pl.col("rollouts", "tokens", "grade_timeouts").sum())
    summary = {f"mc.{r['method']}.{k}": r[k] for r in per_method.to_dicts() for k in ("rollouts", "tokens", "grade_timeouts")}
    summary |= {f"mc.{m}.seconds": s for m, s in mc_seconds(storage, keys).items()}
    sc_tokens = int(read_shards(storage.shard_tables("self_confidence", keys))["tokens"].sum())
    all_in = cost_table({r["method"]: r for r in per_method.to_dicts()}, sc_tokens)
    ratios = {r["method"]: r for r in all_in.to_dicts()}
    if ratios.get("vanilla", {}).get("tokens"):  # the contract keys: rollouts alone, and all-in (+ SC's own samples)
        for method, prefix in (("scan", "mc.token_ratio"), ("scan_binary", "mc.binary_token_ratio")):
            if method in ratios:
                summary[prefix] = ratios[method]["token_ratio_vs_vanilla"]
                summary[f"{prefix}_all_in"] = ratios[method]["all_in_ratio_vs_vanilla"]
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
