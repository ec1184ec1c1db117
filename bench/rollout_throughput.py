"""Rollout stage vs raw engine throughput on the same prompts.

Runs the real `rollouts` asset (Dagster materialization, all shards in one run) on a copy of the pool and
policy of a finished `make run`, then the bare engine `generate` on the same prompts with the same settings
(one call per shard, as the stage does), and prints both tokens/s and their ratio. Engine start-up is excluded
from both. Then the MC stage's rollouts (vanilla: K continuations of every step prefix, submitted per call so the
prefixes share KV) with vLLM prefix caching on and off, and their speed-up.
Usage: .venv/bin/python bench/rollout_throughput.py [--data-dir data] [--engine auto] [--samples 8]
       [--prefix-caching on|off] [--mc-responses 100]
"""

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--engine", default="auto", choices=["auto", "vllm", "transformers"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--prefix-caching", default="on", choices=["on", "off"], help="for the rollout comparison")
    parser.add_argument("--mc-responses", type=int, default=100, help="responses valued by vanilla MC, caching on vs off "
                        "(0 skips it)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import os

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

    import dagster as dg
    import polars as pl

    from assets.common.partitions import shards
    from assets.common.resources import DomainResource, GeneratorResource, StorageResource
    from orchestration.cli import RANGE_END, RANGE_START
    from prm_core.domains import get_domain
    from prm_core.generation.engines import make_engine
    from prm_core.generation.sampling import SamplingSpec, derive_seed

    src = Path(args.data_dir)
    pools = sorted((src / "problem_pool").glob("*.parquet"))
    if not (src / "models" / "policy").exists() or not pools:
        print(f"bench: no policy/pool under {src}; run `make run` first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="prm-bench-"))
    shutil.copytree(src / "models" / "policy", work / "models" / "policy")
    shutil.copytree(src / "problem_pool", work / "problem_pool")
    keys = [p.stem for p in pools]

    domain = get_domain("arith")
    caching = args.prefix_caching == "on"

    def raw_engine() -> tuple[int, float, str]:
        """The bare engine on the stage's prompts and settings: generated tokens, seconds, engine name."""
        from prm_core.domains.problems import to_problems

        engine = make_engine(args.engine, work / "models" / "policy", enable_prefix_caching=caching)
        tokens, seconds = 0, 0.0
        for path in pools:
            prompts = [domain.prompt(p) for p in to_problems(pl.read_parquet(path))]
            spec = SamplingSpec(n=args.samples, temperature=1.0, max_new_tokens=args.max_new_tokens,
                                seed=derive_seed(0, path.stem))  # the stage's per-shard seed
            t0 = time.perf_counter()
            out = engine.generate(prompts, spec)
            seconds += time.perf_counter() - t0
            tokens += sum(s.num_tokens for row in out for s in row)
        engine.close()
        return tokens, seconds, engine.name

    def stage() -> tuple[int, float]:
        """The real `rollouts` asset, materialized by Dagster over all shards in one run."""
        from assets.rollouts import rollouts

        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(shards.name, keys)
            result = dg.materialize(
                [rollouts],
                instance=instance,
                resources={"storage": StorageResource(base_dir=str(work)), "domain": DomainResource(),
                           "generator": GeneratorResource(engine=args.engine, enable_prefix_caching=caching)},
                run_config={"ops": {"rollouts": {"config": {"n_samples": args.samples,
                                                            "max_new_tokens": args.max_new_tokens, "reuse": False}}},
                            "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
            )
        md = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
        return md["generated_tokens"], md["tokens_per_s"]

    # raw before and after the stage, so machine drift and warm caches do not favour either side
    raw1_tokens, raw1_seconds, name = raw_engine()
    stage_tokens, stage_tps = stage()
    raw2_tokens, raw2_seconds, _ = raw_engine()
    raw_tokens, raw_tps = raw1_tokens + raw2_tokens, (raw1_tokens + raw2_tokens) / (raw1_seconds + raw2_seconds)
    print(f"engine:              {name}")
    print(f"shards x problems:   {len(keys)} shards, {args.samples} samples per problem")
    print(f"rollout stage:       {stage_tokens:,} tokens, {stage_tps:,.0f} tokens/s (engine start excluded)")
    print(f"raw engine:          {raw_tokens:,} tokens, {raw_tps:,.0f} tokens/s (two runs: "
          f"{raw1_tokens / raw1_seconds:,.0f} before the stage, {raw2_tokens / raw2_seconds:,.0f} after)")
    print(f"ratio stage/raw:     {stage_tps / raw_tps:.3f} (prefix caching {args.prefix_caching})")
    if args.mc_responses and (src / "rollouts").exists():
        on, off, tokens = mc_caching(src, work, domain, args)
        print(f"MC stage (vanilla, K=8, {args.mc_responses} responses, {tokens:,} tokens): prefix caching on {on:.1f} s, "
              f"off {off:.1f} s, speed-up {off / on:.2f}x")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def mc_caching(src: Path, work: Path, domain, args) -> tuple[float, float, int]:
    """Seconds of the same vanilla MC labelling with vLLM prefix caching on and off (engine start excluded)."""
    import polars as pl

    from prm_core.generation.engines import make_engine
    from prm_core.generation.sampling import SamplingSpec
    from prm_core.labels.mc_estimates import AnnotationConfig, annotate, responses_of

    shard = sorted((src / "rollouts").glob("*.parquet"))[0]
    rollouts = pl.read_parquet(shard).head(args.mc_responses)
    pool = pl.read_parquet(src / "problem_pool" / shard.name)
    responses = responses_of(pool, rollouts)
    sc = {r.problem.problem_id: 1.0 for r in responses}
    spec = SamplingSpec(temperature=0.7, top_p=0.8, max_new_tokens=args.max_new_tokens, seed=0)
    seconds, tokens = {}, 0
    for caching in (True, False):
        engine = make_engine(args.engine, work / "models" / "policy", enable_prefix_caching=caching)
        start = time.perf_counter()
        _, cost = annotate("vanilla", domain, engine, responses, sc, AnnotationConfig(k=8), spec)
        seconds[caching], tokens = time.perf_counter() - start, cost.tokens
        engine.close()
    return seconds[True], seconds[False], tokens


if __name__ == "__main__":
    sys.exit(main())
