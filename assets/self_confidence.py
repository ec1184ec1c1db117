"""`self_confidence`: the policy's pass rate on each problem over N fresh samples (SCAN's SC)."""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, compute_or_reuse, cost, preview, read_shards, table
from assets.common.partitions import shard_backfill, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from assets.common.sampling import ShardSamplingConfig
from prm_core.labels.self_confidence import sc_bucket
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet
from prm_core.lineage.summary import update_summary

CODE_VERSION = "1"


class SelfConfidenceConfig(ShardSamplingConfig):
    n_samples: int = Field(default=8, description="fresh samples per problem (SCAN: 64-128; answer-less ones count as wrong)")
    seed: int = 1


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["problem_pool", "policy_model"],
    code_version=CODE_VERSION,
    group_name="labels",
    kinds={"vllm", "parquet"},
    description="SC(q) = (1/N)·Σ J(r_j, a) over N fresh policy samples per problem.",
)
def self_confidence(context: dg.AssetExecutionContext, config: SelfConfidenceConfig, storage: StorageResource,
                    domain: DomainResource, generator: GeneratorResource) -> dg.MaterializeResult:
    from prm_core.labels.self_confidence import self_confidence as compute_sc
    from prm_core.lineage.storage import md5_dir

    dom, policy = domain.get(), storage.model("policy")
    policy_md5 = md5_dir(policy)
    frames, tokens, sampled = [], 0, 0
    with Timer() as t:
        for shard in context.partition_keys:
            pool_path, out = storage.table("problem_pool", shard), storage.table("self_confidence", shard)
            fingerprint = {"code": CODE_VERSION, "config": config.model_dump(exclude={"reuse"}), "policy": policy_md5,
                           "pool": md5_file(pool_path)}
            spec = config.spec(shard)
            df, reused = compute_or_reuse(out, fingerprint, config.reuse,
                                          lambda: compute_sc(dom, generator.get(policy), read_parquet(pool_path), spec))
            if not reused:
                tokens += int(df["tokens"].sum())
                sampled += int(df["n_samples"].sum())
            frames.append(df)
    batch = pl.concat(frames)
    everything = read_shards(storage.shard_tables("self_confidence"))
    update_summary(storage.base_dir, {
        "sc.mean": float(everything["self_confidence"].mean()),
        "sc.kept_share": float((everything["self_confidence"] >= 0.75).mean()),
        "sc.tokens": int(everything["tokens"].sum()),
    })
    buckets = batch.group_by(bucket=sc_bucket(pl.col("self_confidence"))).agg(problems=pl.len(), mean_sc=pl.col("self_confidence").mean()).sort("bucket")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": batch.height,
            "mean_self_confidence": float(batch["self_confidence"].mean()),
            "buckets": table(buckets),
            "histogram": table(batch.group_by("n_correct").len("problems").sort("n_correct")),
            "preview": preview(batch),
            **cost(t.seconds, generated_tokens=tokens, rollouts=sampled),
        },
        data_version=dg.DataVersion(frame_md5(batch)),
    )
