"""`self_confidence`: SCAN's SC(q), the policy's pass rate on each problem over the N responses `rollouts` sampled."""

from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import compute_or_reuse, computed_seconds, read_shards, record_partition, table
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from assets.common.sampling import ShardSamplingConfig
from prm_core.labels.self_confidence import sc_bucket
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet
from prm_core.lineage.summary import update_summary

CODE_VERSION = "2"


class SelfConfidenceConfig(ShardSamplingConfig):
    source: Literal["rollouts", "fresh"] = Field(
        default="rollouts",
        description="`rollouts`: SC from the very N responses that are labelled (SCAN; no generation, 0 tokens); "
                    "`fresh`: n_samples new samples per problem, whose tokens count as SCAN's cost")
    n_samples: int = Field(default=8, description="fresh samples per problem (source=fresh only; SCAN: 64-128)")
    seed: int = 1


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["rollouts", "problem_pool", "policy_model"],
    code_version=CODE_VERSION,
    group_name="labels",
    kinds={"polars", "parquet"},
    description="SC(q) = (1/N)·Σ J(r_j, a) over the N responses of `rollouts` (or N fresh samples, source=fresh).",
)
def self_confidence(context: dg.AssetExecutionContext, config: SelfConfidenceConfig, storage: StorageResource,
                    domain: DomainResource, generator: GeneratorResource) -> dg.MaterializeResult:
    from prm_core.labels.self_confidence import fresh_self_confidence
    from prm_core.labels.self_confidence import self_confidence as compute_sc
    from prm_core.lineage.storage import md5_dir

    fresh = config.source == "fresh"
    policy = storage.model("policy")
    frames = []
    for shard in context.partition_keys:
        out = storage.table("self_confidence", shard)
        if fresh:
            pool_path = storage.table("problem_pool", shard)
            inputs = {"policy": md5_dir(policy), "pool": md5_file(pool_path)}
            spec = config.spec(shard)

            def compute(pool_path=pool_path, spec=spec):
                return fresh_self_confidence(domain.get(), generator.get(policy), read_parquet(pool_path), spec)
        else:
            roll_path = storage.table("rollouts", shard)
            inputs = {"rollouts": md5_file(roll_path)}

            def compute(roll_path=roll_path):
                roll = read_parquet(roll_path)
                return compute_sc(roll, int(roll["sample_index"].max()) + 1 if roll.height else 1)
        fingerprint = {"code": CODE_VERSION, "source": config.source, "inputs": inputs,
                       "config": config.model_dump(exclude={"reuse", "source"}) if fresh else {}}
        df, reused = compute_or_reuse(out, fingerprint, config.reuse, compute)
        frames.append(df)
        record_partition(  # kept: the cost it had when computed (its tokens are in the table)
            context, storage, shard, df, [out], computed_seconds(out), generated_tokens=int(df["tokens"].sum()),
            rollouts=int(df["n_samples"].sum()) if fresh else 0, reused=reused,
            mean_self_confidence=float(df["self_confidence"].mean() or 0.0), **_distribution(df))
    batch = pl.concat(frames)
    everything = read_shards(storage.shard_tables("self_confidence", all_shards(context)))
    update_summary(storage.base_dir, {
        "sc.mean": float(everything["self_confidence"].mean()),
        "sc.kept_share": float((everything["self_confidence"] >= 0.75).mean()),
        "sc.tokens": int(everything["tokens"].sum()),
        "sc.source": config.source,
        "sc.n": int(everything["n_samples"].max()),
    })
    return dg.MaterializeResult(
        metadata={"run/source": config.source},  # every partition's event gets it: the whole run's setting
        data_version=dg.DataVersion(frame_md5(batch)),
    )


def _distribution(df: pl.DataFrame) -> dict:
    """SC buckets and the n_correct histogram of one shard."""
    buckets = df.group_by(bucket=sc_bucket(pl.col("self_confidence"))).agg(
        problems=pl.len(), mean_sc=pl.col("self_confidence").mean()).sort("bucket")
    return {"buckets": table(buckets), "histogram": table(df.group_by("n_correct").len("problems").sort("n_correct"))}
