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
import json
import statistics
import sys
import warnings
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import polars as pl
    from transformers import AutoTokenizer

    from prm_core.active.compare import CompareConfig, compare_seed
    from prm_core.active.judges import ExactJudge, Trajectory
    from prm_core.domains import get_domain
    from prm_core.domains.problems import prompts_frame
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.labels.mc_estimates import responses_of
    from prm_core.prm.discriminative import init_prm, step_inputs

    data = Path(args.data_dir)
    if not (data / "benchmark_sets" / "processbench.parquet").exists():
        print(f"bench: no finished run under {data}; run `make run` first", file=sys.stderr)
        return 1
    domain = get_domain("arith")
    backbone = Path(json.loads((data / "models" / "prm_backbone.json").read_text())["path"])
    tok = AutoTokenizer.from_pretrained(backbone)
    model = init_prm(backbone, tok, "\n")
    pool = pl.read_parquet(data / "problem_pool" / "*.parquet")
    prompts = dict(prompts_frame(domain, pool).iter_rows())
    roll = pl.read_parquet(data / "rollouts" / "*.parquet").sort("shard", "problem_id", "sample_index")
    pb = pl.read_parquet(data / "benchmark_sets" / "processbench.parquet")
    x_pool = step_inputs(model, tok, [prompts[p] for p in roll["problem_id"]], roll["steps"].to_list(), "\n")
    x_pb = step_inputs(model, tok, pb["prompt"].to_list(), pb["steps"].to_list(), "\n")
    trajs = [Trajectory(r.response_id, r.problem, r.steps) for r in responses_of(pool, roll)]
    truth = ExactJudge(domain).first_errors(trajs)
    pool_error_rate = sum(t >= 0 for t in truth) / len(truth)
    cfg = CompareConfig(heads=args.heads, lr=args.lr, batch_size=args.batch_size)

    def evaluate(heads):
        from prm_core.active.pool import step_scores

        return processbench_scores(pb, step_scores(heads, x_pb))

    rows = []
    chosen_thresholds = None
    for seed in range(args.seeds):  # thresholds chosen once on dev (seed 0), kept for the other seeds
        r = compare_seed(x_pool, trajs, lambda: ExactJudge(domain), evaluate, cfg, seed, chosen_thresholds)
        chosen_thresholds = (r.delta_pred, r.delta_std)
        by_id = {t.response_id: i for i, t in enumerate(trajs)}
        chosen = [by_id[d.response_id] for d in r.decisions if d.labelled]
        hit = sum(truth[i] >= 0 for i in chosen) / max(1, len(chosen))
        rows.append({"full_f1": r.full["f1"], "active_f1": r.active["f1"], "random_f1": r.random["f1"],
                     "label_fraction": r.labels / r.pool, "selected_error_rate": hit})
        print(f"seed {seed}: δ_pred={r.delta_pred} δ_std={r.delta_std} labels {r.labels}/{r.pool} ({r.labels / r.pool:.2f}) | "
              f"F1 full {r.full['f1']:.3f} active {r.active['f1']:.3f} random {r.random['f1']:.3f} | "
              f"selected with an error {hit:.2f} (pool {pool_error_rate:.2f})", flush=True)

    def ms(key):
        values = [r[key] for r in rows]
        se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {se:.3f}"

    print(f"mean ± s.e. over {len(rows)} seeds: full {ms('full_f1')}, active {ms('active_f1')}, random {ms('random_f1')}, "
          f"label fraction {ms('label_fraction')}, selected-with-error {ms('selected_error_rate')} "
          f"(pool {pool_error_rate:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
