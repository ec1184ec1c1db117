"""`rollouts`: N sampled responses per problem of each shard, graded, with token counts."""


import time

import dagster as dg
import polars as pl

from assets.common.metadata import Timer, compute_or_reuse, cost, files_written, is_current, preview, read_shards
from assets.common.partitions import all_shards, shard_backfill, shards
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from assets.common.sampling import ShardSamplingConfig
from prm_core.generation.rollouts import accuracy
from prm_core.lineage.storage import frame_md5, md5_file, read_parquet
from prm_core.lineage.summary import summary_path, update_summary

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
    frames, per_shard, bad_counts, skipped_all = [], [], [], []
    gen_tokens, gen_seconds, sampled, startup, engine = 0, 0.0, 0, 0.0, None
    with Timer() as t:
        for shard in context.partition_keys:
            pool_path, out = storage.table("problem_pool", shard), storage.table("rollouts", shard)
            fingerprint = {"code": CODE_VERSION, "config": spec_fields, "policy": policy_md5, "pool": md5_file(pool_path),
                           "context": generator.max_model_len}
            if engine is None and not (config.reuse and is_current(out, fingerprint)):
                s0 = time.perf_counter()  # the engine's start is a cost of its own, not of the shard
                engine = generator.get(policy)
                startup = time.perf_counter() - s0
            pool, skipped_path = read_parquet(pool_path), storage.table("rollouts_skipped", shard)
            spec = config.spec(shard)

            def sample(pool=pool, spec=spec, skipped_path=skipped_path):
                fits, skipped = fit_to_context(dom, engine, pool)
                write_parquet(skipped, skipped_path)  # before the rollouts: a kept shard always has its list
                return sample_rollouts(dom, engine, fits, spec)

            s0 = time.perf_counter()
            df, reused = compute_or_reuse(out, fingerprint, config.reuse, sample)
            skipped = read_parquet(skipped_path) if skipped_path.exists() else pl.DataFrame(schema=SKIPPED_SCHEMA)
            for row in skipped.iter_rows(named=True):
                context.log.warning(f"shard {row['shard']}: problem {row['problem_id']} skipped: {row['reason']} "
                                    f"(its prompt has {row['prompt_tokens']} tokens)")
            skipped_all.append(skipped)
            seconds = 0.0 if reused else time.perf_counter() - s0
            if not reused:
                gen_tokens += int(df["num_tokens"].sum())
                gen_seconds += seconds
                sampled += df.height
            if df.height != (pool.height - skipped.height) * config.n_samples:
                bad_counts.append(f"{shard}: {df.height} rows for {pool.height - skipped.height} problems x {config.n_samples}")
            frames.append(df)
            per_shard.append({"shard": shard, "problems": pool.height, "skipped": skipped.height, "responses": df.height,
                              "accuracy": accuracy(df), "tokens": int(df["num_tokens"].sum()),
                              "seconds": round(seconds, 2), "reused": reused})
    batch, skipped = pl.concat(frames), pl.concat(skipped_all)
    keys = all_shards(context)
    tables = storage.shard_tables("rollouts", keys)
    everything = read_shards(tables)
    tokens_per_s = gen_tokens / gen_seconds if gen_seconds else None
    summary = {"rollouts.count": everything.height, "rollouts.tokens": int(everything["num_tokens"].sum()),
               "rollouts.accuracy": accuracy(everything), "rollouts.shards": len(tables),
               "rollouts.skipped_prompts": read_shards(storage.shard_tables("rollouts_skipped", keys)).height,
               "rollouts.grade_timeouts": int((everything["grade"] == "timeout").sum())}
    if tokens_per_s:
        summary["rollouts.tokens_per_s"] = tokens_per_s
    update_summary(storage.base_dir, summary)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": batch.height,
            "accuracy": accuracy(batch),
            "skipped_prompts": skipped.height,
            "grade_outcomes": preview(batch.group_by("grade").len("responses").sort("grade"), n=10),
            "generated_tokens": int(batch["num_tokens"].sum()),
            "tokens_per_s": round(tokens_per_s or 0.0, 1),
            "engine_startup_seconds": round(startup, 2),
            "truncated": int((batch["finish_reason"] == "length").sum()),
            "shards": preview(pl.DataFrame(per_shard), n=100),
            **({"skipped": preview(skipped, n=50)} if skipped.height else {}),
            "preview": preview(batch.drop("steps")),
            **cost(t.seconds, generated_tokens=gen_tokens, rollouts=sampled),
            **files_written(storage, [*storage.shard_tables("rollouts", context.partition_keys),
                                      *storage.shard_tables("rollouts_skipped", context.partition_keys),
                                      summary_path(storage.base_dir)]),
        },
        data_version=dg.DataVersion(frame_md5(batch.drop("steps"))),
        check_results=[dg.AssetCheckResult(check_name="n_per_problem", passed=not bad_counts,
                                           metadata={"mismatches": "; ".join(bad_counts) or "none"})],
    )

