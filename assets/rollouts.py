"""`rollouts`: N sampled responses per problem of each shard, graded, with token counts."""

import dagster as dg
import polars as pl

from assets.common.metadata import (
    compute_or_reuse,
    computed_seconds,
    is_current,
    preview,
    read_shards,
    record_partition,
)
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from assets.common.sampling import ShardSamplingConfig
from prm_core.generation.rollouts import accuracy
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet
from prm_core.lineage.summary import update_summary

CODE_VERSION = "2"  # 2: grade outcome column; prompts longer than the context skipped, not fatal


class RolloutsConfig(ShardSamplingConfig):
    """N responses per problem (the defaults of `ShardSamplingConfig`)."""


@dg.asset(
    partitions_def=shards,
    backfill_policy=shard_backfill,
    deps=["problem_pool", "policy_model"],
    code_version=CODE_VERSION,
    group_name="generation",
    kinds={"vllm", "parquet"},
    check_specs=[dg.AssetCheckSpec("n_per_problem", asset="rollouts", description="every problem has exactly N responses")],
    description="N responses per problem from the policy, split into steps and graded by the domain.",
)
def rollouts(
    context: dg.AssetExecutionContext,
    config: RolloutsConfig,
    storage: StorageResource,
    domain: DomainResource,
    generator: GeneratorResource,
) -> dg.MaterializeResult:
    from prm_core.generation.rollouts import SKIPPED_SCHEMA, fit_to_context, sample_rollouts
    from prm_core.lineage.storage import md5_dir, write_parquet

    dom = domain.get()
    policy = storage.model("policy")
    policy_md5 = md5_dir(policy)
    spec_fields = config.model_dump(exclude={"reuse"})
    frames, per_shard, bad_counts = [], [], []
    engine = None
    for shard in context.partition_keys:
        pool_path, out = storage.table("problem_pool", shard), storage.table("rollouts", shard)
        fingerprint = {"code": CODE_VERSION, "config": spec_fields, "policy": policy_md5, "pool": md5_file(pool_path),
                       "context": generator.max_model_len}
        if engine is None and not (config.reuse and is_current(out, fingerprint)):
            engine = generator.get(policy)  # its start: a cost of the run (the first asset using it), not of a shard
        pool, skipped_path = read_parquet(pool_path), storage.table("rollouts_skipped", shard)
        spec = config.spec(shard)

        def sample(pool=pool, spec=spec, skipped_path=skipped_path):
            fits, skipped = fit_to_context(dom, engine, pool)
            write_parquet(skipped, skipped_path)  # before the rollouts: a kept shard always has its list
            return sample_rollouts(dom, engine, fits, spec)

        df, reused = compute_or_reuse(out, fingerprint, config.reuse, sample)
        skipped = read_parquet(skipped_path) if skipped_path.exists() else pl.DataFrame(schema=SKIPPED_SCHEMA)
        for row in skipped.iter_rows(named=True):
            context.log.warning(f"shard {row['shard']}: problem {row['problem_id']} skipped: {row['reason']} "
                                f"(its prompt has {row['prompt_tokens']} tokens)")
        if df.height != (pool.height - skipped.height) * config.n_samples:
            bad_counts.append(f"{shard}: {df.height} rows for {pool.height - skipped.height} problems x {config.n_samples}")
        frames.append(df)
        seconds, tokens = computed_seconds(out), int(df["num_tokens"].sum())  # kept: as it was when sampled
        per_shard.append({"shard": shard, "problems": pool.height, "skipped": skipped.height, "responses": df.height,
                          "accuracy": accuracy(df), "tokens": tokens, "seconds": seconds, "reused": reused})
        record_partition(
            context, storage, shard, df.drop("steps"), [out, skipped_path], seconds, generated_tokens=tokens,
            rollouts=df.height, reused=reused, accuracy=accuracy(df), skipped_prompts=skipped.height,
            grade_outcomes=preview(df.group_by("grade").len("responses").sort("grade"), n=10),
            tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
            truncated=int((df["finish_reason"] == "length").sum()),
            **({"skipped": preview(skipped, n=50)} if skipped.height else {}))
    batch = pl.concat(frames)
    keys = all_shards(context)
    tables = storage.shard_tables("rollouts", keys)
    everything = read_shards(tables)
    summary = {"rollouts.count": everything.height, "rollouts.tokens": int(everything["num_tokens"].sum()),
               "rollouts.accuracy": accuracy(everything), "rollouts.shards": len(tables),
               "rollouts.skipped_prompts": read_shards(storage.shard_tables("rollouts_skipped", keys)).height,
               "rollouts.grade_timeouts": int((everything["grade"] == "timeout").sum())}
    tokens_per_s = _tokens_per_s(everything, tables)
    if tokens_per_s:
        summary["rollouts.tokens_per_s"] = tokens_per_s
    update_summary(storage.base_dir, summary)
    return dg.MaterializeResult(
        metadata={  # every partition's event gets these: facts of the whole run
            # the engine's own start, whichever asset of this run worker started it (policy_model's evaluation)
            "run/engine_startup_seconds": round(getattr(engine, "startup_seconds", 0.0), 2),
            # requests a served engine (openai) sent again after a 429/5xx/timeout, so far in this run
            "run/engine_retries": getattr(getattr(engine, "stats", None), "retries", 0),
        },
        data_version=dg.DataVersion(frame_md5(batch.drop("steps"))),
        check_results=[dg.AssetCheckResult(check_name="n_per_problem", passed=not bad_counts,
                                           metadata={"mismatches": "; ".join(bad_counts) or "none"})],
    )


def _tokens_per_s(everything: pl.DataFrame, tables) -> float | None:
    """Generation throughput over every shard with recorded sampling seconds (kept shards count as they were
    sampled, so a rerun that samples nothing keeps the figure); None when no shard has any."""
    if everything.is_empty():
        return None
    tokens = dict(everything.group_by("shard").agg(pl.col("num_tokens").sum()).iter_rows())
    timed = [(tokens.get(p.stem, 0), computed_seconds(p)) for p in tables]
    seconds = sum(s for _, s in timed if s)
    return sum(t for t, s in timed if s) / seconds if seconds else None
