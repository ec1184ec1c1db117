"""ActPRM, pool-based, on the testbed: active selection vs full data vs random selection at the same label budget.

After `make run`: the pool is the rollouts (every response of every question), the judge the exact step checker,
the heads an ensemble on the frozen PRM backbone's step inputs ([hidden ; LM features], standardised with the
pool's statistics). For each seed: one pass with every trajectory labelled (full data); thresholds (δ_pred, δ_std)
chosen once (on seed 0) on the ProcessBench-style **dev** split from a grid — the fewest labels whose dev F1 is within 0.01 of the
full-data dev F1 — then one active pass with them; then a random subset of the same size. F1 is the test split's
at τ chosen on dev (the pipeline's rule). Prints per seed and mean ± s.e., and how often the selected trajectories
really contain an error against the pool's rate.
Usage: .venv/bin/python bench/actprm_pool.py [--data-dir data] [--seeds 3] [--heads 16] [--lr 3e-3]
"""

import argparse
import sys
import warnings
from pathlib import Path


def main() -> int:
    from prm_core.active.compare import CompareConfig

    defaults = CompareConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--heads", type=int, default=defaults.heads)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import polars as pl

    from prm_core.active.compare import error_rate, run_comparison
    from prm_core.runtime.stats import mean_se
    from prm_core.active.features import StepFeatures, pool_of
    from prm_core.domains import get_domain
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.lineage.storage import local_copy, model_path

    data = Path(args.data_dir)
    if not (data / "benchmark_sets" / "processbench.parquet").exists():
        print(f"bench: no finished run under {data}; run `make run` first", file=sys.stderr)
        return 1
    domain = get_domain("arith")
    features = StepFeatures.load(local_copy(model_path(data, "prm_backbone")), "\n")  # the pointer: relative to the data dir
    problems = pl.read_parquet(data / "problem_pool" / "*.parquet")
    roll = pl.read_parquet(data / "rollouts" / "*.parquet").sort("shard", "problem_id", "sample_index")
    pb = pl.read_parquet(data / "benchmark_sets" / "processbench.parquet")
    pool = pool_of(features, domain, problems, roll)
    rows = []

    def report(r):  # truth is the experiment's audit, computed after the seeds: printed at the end
        rows.append(r)
        print(f"seed {r.seed}: δ_pred={r.delta_pred} δ_std={r.delta_std} labels {r.labels}/{r.pool} "
              f"({r.labels / r.pool:.2f}) | F1 full {r.full['f1']:.3f} active {r.active['f1']:.3f} "
              f"random {r.random['f1']:.3f}", flush=True)

    cfg = CompareConfig(heads=args.heads, lr=args.lr, batch_size=args.batch_size)
    found = run_comparison(pool, features, pb, processbench_scores, domain, cfg, args.seeds, on_seed=report)
    pool_error_rate = error_rate(list(found.truth), found.truth)
    hits = [error_rate([d.response_id for d in r.decisions if d.labelled], found.truth) for r in found.results]
    for r, hit in zip(found.results, hits):
        print(f"seed {r.seed}: selected with an error {hit:.2f} (pool {pool_error_rate:.2f})")

    def ms(values):
        mean, se = mean_se(values)
        return f"{mean:.3f} ± {se:.3f}"

    res = found.results
    print(f"mean ± s.e. over {len(res)} seeds: full {ms([r.full['f1'] for r in res])}, "
          f"active {ms([r.active['f1'] for r in res])}, random {ms([r.random['f1'] for r in res])}, "
          f"label fraction {ms([r.labels / r.pool for r in res])}, selected-with-error {ms(hits)} "
          f"(pool {pool_error_rate:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
