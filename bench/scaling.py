"""How the shard stage's cost grows with the pool, and what a new shard costs against a full run.

(a) Growth: the partitioned stages (problem_pool, rollouts, step_truth, self_confidence, mc_estimates,
denoised_labels) on 1, 2 and 4 shards of `--shard-size` problems, one fresh data dir, Dagster instance and
subprocess per size, with a fixed policy (`--policy`, copied in; `policy_model` is not run) and the project's
default stage settings. Seconds are Dagster's step stats (a step's wall time, the engine start included, in
`rollouts`); `work` seconds are the sum of the per-shard `cost/seconds` metadata (no fixed per-run cost).
Peak RSS: the subprocess's `getrusage(RUSAGE_SELF).ru_maxrss` (the vLLM CPU engine runs in that process), and
per stage the largest RSS of the process and its descendants sampled from /proc every 0.1 s within the step.
(b) Incremental: on the 4-shard pool a new problem file of 10 % more problems appears; the run that
`orchestration.sensors.new_shards_request` asks for (its run config and range tags) materializes the partitioned
stages of the new shard. `--full` (default) also times the rest of a refresh: the shard stage's unpartitioned
assets, the implicit stage and the PRM stage (real ProcessBench/PRMBench scoring off), after the 4-shard run
(the full run from scratch) and after the new shard (the refresh).
(c) Ray vs in-process: `ray_rows_equal`, `ray_overhead` come from `RAY_HOOK` when it exists.
`--engine openai`: every run talks to one long-lived server, so no run pays an engine start: `vllm serve` on the
policy, started here once on 127.0.0.1 before the first run (`server_start_seconds`, not in any run's seconds), or
the server at `--base-url` (serving that policy).
Usage: .venv/bin/python bench/scaling.py [--shard-size 160] [--engine auto] [--policy DIR] [--no-full] [--json]
       [--base-url URL] [--served-model NAME]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTITIONED = ["problem_pool", "rollouts", "step_truth", "self_confidence", "mc_estimates", "denoised_labels"]
SIZES = (1, 2, 4)
RAY_HOOK = "bench.ray_compare:compare"  # (c) — the Ray helper's function: (args) -> {"ray_rows_equal", "ray_overhead"}


def tree_rss() -> int:
    """RSS in bytes of this process and all its descendants (vLLM or compile workers, if any)."""
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


def child(spec: dict) -> dict:
    """One measurement in this (fresh) process: the runs of `spec`, their per-step seconds, tokens and RSS."""
    import resource
    import threading
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ["PRM_PROGRESS"] = "0"
    import dagster as dg

    import assets
    from assets.common.partitions import label_sets, shards
    from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
    from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE
    from orchestration.launch import RANGE_END, RANGE_START, ensure_instance

    samples, stop = [], threading.Event()

    def sample():
        while not stop.wait(0.1):
            samples.append((time.time(), tree_rss()))

    threading.Thread(target=sample, daemon=True).start()
    every = [*dg.load_assets_from_package_module(assets), *dg.load_asset_checks_from_package_module(assets)]
    data, home = Path(spec["data"]), Path(spec["home"])
    ensure_instance(home)
    served = {"base_url": spec["base_url"], "served_model": spec["served_model"]} if spec["engine"] == "openai" else {}
    resources = {"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(),
                 "generator": GeneratorResource(engine=spec["engine"], **served),
                 "tracking": TrackingResource(root=str(data.parent))}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    out = {"steps": {}, "partitions": {}, "wall": {}}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pool_ops = {"problem_pool": {"config": {"source": spec["source"]}}}
        if spec["kind"] == "sensor":  # exactly what the sensor/schedule requests for the new file
            from orchestration.sensors import new_shards_request

            os.environ["PRM_PROBLEMS_DIR"] = spec["source"]
            result = new_shards_request(instance, "bench")
            for add in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
            request = result.run_requests[0]
            pool_ops, tags = request.run_config["ops"], request.tags
            keys = [tags[RANGE_START], tags[RANGE_END]]
        else:
            keys = spec["keys"] or instance.get_dynamic_partitions(shards.name)
            instance.add_dynamic_partitions(shards.name, keys)
            tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
        runs = [("partitioned", PARTITIONED, pool_ops, tags)] if spec["kind"] != "rest" else []
        if spec["rest"]:  # the rest of a refresh: unpartitioned shard-stage assets (fixed policy), implicit, PRM
            rest = [a for a in SHARD_STAGE if a not in PARTITIONED and a != "policy_model"]
            sets = label_sets.get_partition_keys()
            runs += [("shard_unpartitioned", rest, {}, {}), ("implicit", IMPLICIT_STAGE, {}, {RANGE_START: "ce", RANGE_END: "nca"}),
                     ("prm", PRM_STAGE, {"benchmark_scores": {"config": {"real_processbench_label_sets": []}}},
                      {RANGE_START: sets[0], RANGE_END: sets[-1]})]
        for name, selection, ops, run_tags in runs:
            t0 = time.perf_counter()
            result = dg.materialize(every, instance=instance, selection=selection, resources=resources,
                                    run_config={"ops": ops, **quiet}, tags=run_tags)
            out["wall"][name] = time.perf_counter() - t0
            if not result.success:
                raise SystemExit(f"bench: run {name} failed")
            for step in instance.get_run_step_stats(result.run_id):
                near = [r for t, r in samples if step.start_time - 0.1 <= t <= step.end_time + 0.1]  # a short step: its neighbours
                peak = max(near, default=0)
                out["steps"][step.step_key] = {"seconds": step.end_time - step.start_time, "peak_rss": peak, "run": name}
            for m in result.get_asset_materialization_events():
                md = {k: v.value for k, v in m.materialization.metadata.items()}
                if m.partition and name == "partitioned":
                    out["partitions"].setdefault(m.asset_key.to_user_string(), {})[m.partition] = {
                        "seconds": md.get("cost/seconds") or 0.0, "tokens": md.get("cost/generated_tokens", 0)}
                if m.asset_key.to_user_string() == "rollouts" and "run/engine_startup_seconds" in md:
                    out["engine_start"] = md["run/engine_startup_seconds"]
    stop.set()
    out["keys"] = keys
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["peak_rss_children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return out


def spawn(spec: dict) -> dict:
    """`child(spec)` in a fresh interpreter (so its peak RSS and engine are its own)."""
    result = Path(spec["data"]).parent / f"result-{spec['kind']}.json"
    cmd = [sys.executable, __file__, "--_child", json.dumps({**spec, "result": str(result)})]
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1],
                   stdout=subprocess.DEVNULL if spec["quiet"] else None)
    return json.loads(result.read_text())


def write_problems(folder: Path, key: str, size: int, seed: int) -> None:
    """A problem file of `size` generated arith problems: what a user drops into the problems folder."""
    from prm_core.domains import get_domain
    from prm_core.domains.problems import synthetic_shard

    df = synthetic_shard(get_domain("arith"), key, size, seed).select("problem_id", "question", "answer")
    folder.mkdir(parents=True, exist_ok=True)
    df.write_ndjson(folder / f"{key}.jsonl")


def stage_figures(run: dict) -> dict:
    """Per partitioned stage: step seconds, work seconds (per-shard costs), tokens, peak RSS (MiB)."""
    out = {}
    for stage in PARTITIONED:
        parts = run["partitions"].get(stage, {}).values()
        out[stage] = {"seconds": round(run["steps"][stage]["seconds"], 2),
                      "work_seconds": round(sum(p["seconds"] for p in parts), 2),
                      "tokens": int(sum(p["tokens"] for p in parts)),
                      "peak_rss_mib": round(run["steps"][stage]["peak_rss"] / 2**20)}
    return out


def total(run: dict, key: str = "seconds", runs: tuple = ("partitioned",)) -> float:
    if key == "work_seconds":
        return sum(v["work_seconds"] for v in stage_figures(run).values())
    return sum(s["seconds"] for s in run["steps"].values() if s["run"] in runs)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def figures(sizes: dict, base_rest: dict | None, inc: dict, ray: dict) -> dict:
    one, four = sizes[1], sizes[4]
    eng1, eng4 = one.get("engine_start", 0.0), four.get("engine_start", 0.0)
    per_size = {f"{n}x": {"shards": len(run["keys"]), "seconds": round(total(run), 2),
                          "work_seconds": round(total(run, "work_seconds"), 2), "engine_start_seconds": run.get("engine_start"),
                          "tokens": sum(s["tokens"] for s in stage_figures(run).values()),
                          "peak_rss_mib": round(run["peak_rss"] / 2**20), "stages": stage_figures(run)}
                for n, run in sizes.items()}
    f1, f4 = stage_figures(one), stage_figures(four)
    out = {
        "growth_4x": ratio(total(four), 4 * total(one)),
        "growth_4x_excl_engine_start": ratio(total(four) - eng4, 4 * (total(one) - eng1)),
        "growth_4x_work": ratio(total(four, "work_seconds"), 4 * total(one, "work_seconds")),
        # shards differ in content (MC cost follows the share of wrong responses): seconds per generated token
        "growth_4x_per_token": ratio(total(four) / per_size["4x"]["tokens"], total(one) / per_size["1x"]["tokens"]),
        "growth_4x_per_stage": {s: ratio(f4[s]["seconds"], 4 * f1[s]["seconds"]) for s in PARTITIONED},
        "rss_growth_4x": ratio(four["peak_rss"], one["peak_rss"]),
        "rss_growth_4x_per_stage": {s: ratio(f4[s]["peak_rss_mib"], f1[s]["peak_rss_mib"]) for s in PARTITIONED},
        "incremental_ratio": ratio(total(inc), total(four)),
        "incremental_ratio_excl_engine_start": ratio(total(inc) - inc.get("engine_start", 0.0), total(four) - eng4),
        "incremental_ratio_per_stage": {s: ratio(inc["steps"][s]["seconds"], four["steps"][s]["seconds"]) for s in PARTITIONED},
        "incremental": {"new_shards": inc["keys"], "seconds": round(total(inc), 2), "stages": stage_figures(inc)},
        "sizes": per_size,
        **linear_fit(sizes),
        **ray,
    }
    everything = ("partitioned", "shard_unpartitioned", "implicit", "prm")
    if base_rest is not None:
        scratch = total(four) + total(base_rest, runs=everything)
        refresh = total(inc, runs=everything)
        out["incremental_ratio_full"] = ratio(refresh, scratch)
        out["full"] = {"from_scratch_seconds": round(scratch, 2), "refresh_seconds": round(refresh, 2),
                       "steps_from_scratch": {k: round(v["seconds"], 2) for k, v in {**four["steps"], **base_rest["steps"]}.items()},
                       "steps_refresh": {k: round(v["seconds"], 2) for k, v in inc["steps"].items()}}
    else:
        out["incremental_ratio_full"], out["incremental_ratio_full_reason"] = None, "not measured: --no-full"
    return out


def ray_figures(args) -> dict:
    """(c) from the Ray helper's function when it exists (the hook named by RAY_HOOK), else null with the reason."""
    import importlib

    module, name = RAY_HOOK.split(":")
    try:
        compare = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        reason = f"not measured: no Ray comparison to call ({RAY_HOOK}: {e})"
        return {"ray_rows_equal": None, "ray_overhead": None, "ray_reason": reason}
    if not args.ray:
        reason = "not measured: pass --ray"
        return {"ray_rows_equal": None, "ray_overhead": None, "ray_reason": reason}
    found = compare(args)
    return {"ray_rows_equal": found["ray_rows_equal"], "ray_overhead": found["ray_overhead"]}


def default_policy() -> str | None:
    """The policy `make run` trained in this checkout's data dir (`$PRM_DATA_DIR`, default `data/`), if any."""
    data = Path(os.environ.get("PRM_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")
    path = data / "models" / "policy"
    return str(path) if (path / "model.safetensors").exists() else None


def linear_fit(sizes: dict) -> dict:
    """seconds = fixed + per_problem · problems, least squares over the sizes: the per-run cost (engine start, step
    overhead) apart from the cost that grows with the pool."""
    xs = [n * sizes[n]["shard_size"] for n in sizes]
    ys = [total(sizes[n]) for n in sizes]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    fitted = [my + slope * (x - mx) for x in xs]
    r2 = 1 - sum((y - f) ** 2 for y, f in zip(ys, fitted)) / max(1e-9, sum((y - my) ** 2 for y in ys))
    return {"fixed_seconds": round(my - slope * mx, 2), "seconds_per_problem": round(slope, 4), "linear_r2": round(r2, 4)}


def train_policy(work: Path, engine: str) -> str:
    """A small policy, trained once and cached (only when no `--policy` and no finished run's policy exists)."""
    cached = Path(tempfile.gettempdir()) / "prm-bench-policy"
    if not (cached / "model.safetensors").exists():
        import dagster as dg

        import assets
        from assets.common.resources import DomainResource, GeneratorResource, StorageResource

        data = work / "policy-data"
        with dg.instance_for_test() as instance:
            dg.materialize(dg.load_assets_from_package_module(assets), instance=instance, selection=["policy_model"],
                           resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource(),
                                      "generator": GeneratorResource(engine=engine)},
                           run_config={"ops": {"policy_model": {"config": {"train_steps": 900, "eval_problems": 50}}}})
        shutil.copytree(data / "models" / "policy", cached, dirs_exist_ok=True)
    return str(cached)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shard-size", type=int, default=160, help="problems per shard at 1x (at 40 the per-run cost, "
                        "mostly the engine start, is half of the 1x run and hides the growth)")
    parser.add_argument("--engine", default="auto", choices=["auto", "vllm", "transformers", "openai"])
    parser.add_argument("--base-url", default="", help="openai: a running server's API root (default: `vllm serve` "
                        "on the policy, started here once)")
    parser.add_argument("--served-model", default="", help="openai: the model's name on that server (default: its only one)")
    parser.add_argument("--policy", default=None, help="policy folder (default: data/models/policy of `make run`, else one "
                        "trained here)")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the rest of a refresh (unpartitioned shard stage, implicit, PRM stage)")
    parser.add_argument("--ray", action="store_true", help="(c) Ray vs in-process, through RAY_HOOK")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        spec = json.loads(args._child)
        Path(spec["result"]).write_text(json.dumps(child(spec)))
        return 0
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="prm-scaling-"))
    policy = args.policy or default_policy() or train_policy(work, "auto" if args.engine == "openai" else args.engine)
    server = None
    if args.engine == "openai" and not args.base_url:
        server = start_server(policy, work)
        args.base_url = server.base_url
    try:
        out = measure_all(args, work, policy)
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        out["server_start_seconds"] = round(server.startup_seconds, 1)
    out["wall_seconds"] = round(time.perf_counter() - start, 1)
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)
    return 0


def start_server(policy: str, work: Path):
    """`vllm serve` on the policy at the generator's default sizes (max_model_len 512, 512 sequences, 2 GiB KV)."""
    from prm_core.generation.vllm_server import VllmServer

    print("bench: starting vllm serve ...", file=sys.stderr, flush=True)
    server = VllmServer(policy, max_model_len=512, max_num_seqs=512, kv_cache_gib=2, log_path=work / "vllm-serve.log")
    return server.start()


def measure_all(args, work: Path, policy: str) -> dict:
    """(a), (b) and (c) on `policy`: the figures, before the bench's own wall time."""
    source = work / "problems"
    for i in range(max(SIZES)):
        write_problems(source, f"arith-{i:04d}", args.shard_size, args.seed)
    runs = {}

    def measure(kind: str, name: str, keys: list[str], rest: bool = False) -> dict:
        data = work / name / "data"
        if not (data / "models" / "policy").exists():
            shutil.copytree(policy, data / "models" / "policy")
            (data / "models" / "policy.json").write_text(json.dumps({"path": "models/policy"}))
        spec = {"kind": kind, "keys": keys, "rest": rest, "data": str(data), "home": str(work / name / "dagster_home"),
                "source": str(source), "engine": args.engine, "quiet": args.json, "base_url": args.base_url,
                "served_model": args.served_model}
        print(f"bench: {name} ({kind}) ...", file=sys.stderr, flush=True)
        return {**spawn(spec), "shard_size": args.shard_size}

    for n in SIZES:
        runs[n] = measure("run", f"{n}x", [f"arith-{i:04d}" for i in range(n)])
    base_rest = measure("rest", "4x", [], rest=True) if args.full else None
    # the pool grows by 10 %: one new file, found and run by the sensor's own request
    write_problems(source, f"arith-{max(SIZES):04d}", max(1, round(0.1 * max(SIZES) * args.shard_size)), args.seed)
    inc = measure("sensor", "4x", [], rest=args.full)
    out = figures(runs, base_rest, inc, ray_figures(args))
    out.update({"shard_size": args.shard_size, "engine": args.engine, "policy": policy})
    return out


def print_table(out: dict) -> None:
    print(f"shard size {out['shard_size']}, engine {out['engine']}, policy {out['policy']}, wall {out['wall_seconds']} s"
          + (f", vllm serve started once in {out['server_start_seconds']} s" if "server_start_seconds" in out else ""))
    print(f"{'size':>5} {'stage':<16} {'seconds':>8} {'work s':>8} {'tokens':>9} {'peak RSS MiB':>13}")
    for size, fig in out["sizes"].items():
        for stage, s in fig["stages"].items():
            print(f"{size:>5} {stage:<16} {s['seconds']:>8.2f} {s['work_seconds']:>8.2f} {s['tokens']:>9} {s['peak_rss_mib']:>13}")
        print(f"{size:>5} {'(all)':<16} {fig['seconds']:>8.2f} {fig['work_seconds']:>8.2f} {fig['tokens']:>9} "
              f"{fig['peak_rss_mib']:>13}  engine start {fig['engine_start_seconds']} s")
    for s, v in out["incremental"]["stages"].items():
        print(f"{'new':>5} {s:<16} {v['seconds']:>8.2f} {v['work_seconds']:>8.2f} {v['tokens']:>9} {v['peak_rss_mib']:>13}")
    for key in ("fixed_seconds", "seconds_per_problem", "linear_r2", "growth_4x", "growth_4x_excl_engine_start", "growth_4x_work", "growth_4x_per_token", "rss_growth_4x", "incremental_ratio",
                "incremental_ratio_excl_engine_start", "incremental_ratio_full", "ray_rows_equal", "ray_overhead"):
        print(f"{key:<38} {out.get(key)}")
    for key in ("growth_4x_per_stage", "rss_growth_4x_per_stage", "incremental_ratio_per_stage"):
        print(f"{key:<38} {out[key]}")
    if "full" in out:
        print(f"full refresh {out['full']['refresh_seconds']} s vs from scratch {out['full']['from_scratch_seconds']} s")
    for key in ("incremental_ratio_full_reason", "ray_reason"):
        if key in out:
            print(f"{key}: {out[key]}")


if __name__ == "__main__":
    sys.exit(main())
