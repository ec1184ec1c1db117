"""`prm`: run the default pipeline (with progress bars and a summary), compare the labelling methods at matched
FLOP budgets, print the last summary, open the UI.

    prm run [--shards 2] [--shard-size 80] [--samples 8] [--policy-steps 1400] [--engine auto]
    prm compare [--budgets 40,80,160] [--max-shards 16]
    prm summary [--json]
    prm release NAME | prm release verify NAME
    prm ui
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import uuid
import warnings
from pathlib import Path

from assets.common.lock import launcher_tags
from assets.common.paths import project_root
from orchestration.cli_checks import (
    FlagProblems,
    RunPlan,
    RunStage,
    absolute_paths,
    at_least,
    fail_abandoned_runs,
    int_list,
    plan_run,
)
from orchestration.launch import RANGE_END, RANGE_START

MAX_SHARDS = 10_000  # shards are Dagster partitions: a run over more is a mistyped flag, not a pool
MAX_SHARD_SIZE = 10_000_000
MAX_SEED = 2**31 - 2  # per-request seeds are derived modulo 2^31 - 1 (generation/sampling.py)


def set_env_defaults(data_dir: str | None = None, create_instance: bool = True) -> None:
    """The data root (absolute when local, as run workers start elsewhere) and its own Dagster instance (created
    unless `create_instance` is False: a command that only reads leaves the folder as it found it)."""
    from orchestration.launch import dagster_home_for, ensure_instance
    from prm_core.lineage.storage import as_path, is_local

    root = project_root()
    if data_dir:
        os.environ["PRM_DATA_DIR"] = data_dir
    os.environ.setdefault("PRM_DATA_DIR", str(root / "data"))
    if is_local(as_path(os.environ["PRM_DATA_DIR"])):
        os.environ["PRM_DATA_DIR"] = str(Path(os.environ["PRM_DATA_DIR"]).resolve())
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home_for(os.environ["PRM_DATA_DIR"], root)))
    if create_instance:
        ensure_instance(Path(os.environ["DAGSTER_HOME"]))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    # bars that say nothing of the run's work: MLflow's artifact copies, the Hub's and transformers' weight loading
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # reaches the run worker and vLLM's engine process too
    warnings.filterwarnings("ignore", module="dagster")
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except Exception:
        pass


def run_config(args: argparse.Namespace) -> dict:
    return {
        "ops": {
            "problem_pool": {"config": {"source": args.source, "shard_size": args.shard_size, "seed": args.seed}},
            "policy_model": {
                "config": {"train_steps": args.policy_steps, "seed": args.seed, "eval_problems": args.eval_problems,
                           "pretrained": args.policy or ""}
            },
            "rollouts": {"config": {"n_samples": args.samples, "seed": args.seed}},
            "benchmark_sets": {"config": {"processbench_per_class": args.bench_per_class, "bon_problems": args.bon_problems,
                                          "seed": args.seed}},
            "prm_backbone": {"config": {"train_steps": args.backbone_steps, "seed": args.seed,
                                        "pretrained": args.prm_backbone or ""}},
            "prm_model": {"config": {"steps": args.prm_steps, "seed": args.seed}},
            "actprm_model": {"config": {"mc_judge": args.actprm_mc_judge, "real_processbench": args.processbench or ""}},
            "implicit_prm": {"config": {"seed": args.seed}},
            "benchmark_scores": {"config": {"real_processbench": args.processbench or "",
                                            "real_prmbench": args.prmbench or ""}},
            **({"method_frontier": {"config": {"budgets": list(args.budgets), "methods": list(args.methods),
                                                "prm_steps": args.prm_steps}}}
               if getattr(args, "budgets", None) else {}),
        },
        "loggers": {"console": {"config": {"log_level": args.log_level}}},
        # the run carries its data dir, domain and engine: a run worker started elsewhere (a daemon, another launcher,
        # a re-execution from the UI) works on the same data
        "resources": {"storage": {"config": {"base_dir": os.environ["PRM_DATA_DIR"]}},
                      **({"domain": {"config": {"name": args.domain}}} if args.domain else {}),
                      **({"generator": {"config": {"engine": args.engine}}} if args.engine else {})},
    }


def run_tags(args: argparse.Namespace, plan: RunPlan, start: float) -> dict[str, str]:
    """Tags of every run of one `prm run`: each argument as given or defaulted, the data dir, an ISO start time."""
    from datetime import datetime, timezone

    skip = {"command", "func", "json", "quiet", "log_level", "data_dir"}
    tags = {f"prm/{k}": str(v) for k, v in sorted(vars(args).items()) if k not in skip and v is not None}
    return {**tags, "prm/data_dir": os.environ["PRM_DATA_DIR"], "prm/domain": plan.domain,
            "prm/engine": plan.engine, "prm/command": " ".join(["prm", *sys.argv[1:]])[:1000],
            "prm/started": datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="seconds"), **launcher_tags()}


def cmd_run(args: argparse.Namespace) -> int:
    start = time.time()
    args = absolute_paths(args)
    try:
        plan = plan_run(args)  # every flag checked once, into what the run does
    except FlagProblems as e:
        return _flag_errors("prm run", e)
    return _holding_the_data_dir("prm run", args, plan, lambda: _execute(args, plan, start))


def _flag_errors(command: str, e: FlagProblems) -> int:
    print("".join(f"{command}: error: {p}\n" for p in e.problems), end="", file=sys.stderr)
    return 2


def _holding_the_data_dir(command: str, args: argparse.Namespace, plan: RunPlan, work) -> int:
    """`work()` with the plan's data dir and instance set up, as the data dir's one writer (a data dir on object
    storage has no lock: assets/common/lock.py)."""
    set_env_defaults(plan.data_dir)
    os.environ.update(plan.environ)
    from assets.common.lock import DataDirBusy, data_dir_lock
    from prm_core.lineage.storage import as_path, is_local

    data_dir = os.environ["PRM_DATA_DIR"]
    try:
        with data_dir_lock(data_dir, wait=args.wait) if is_local(as_path(data_dir)) else contextlib.nullcontext():
            return work()
    except DataDirBusy as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 1


COMPARE_NEEDS = ("problem_pool", "policy_model", "rollouts", "step_truth", "self_confidence", "mc_estimates",
                 "denoised_labels", "benchmark_sets", "prm_backbone", "actprm_model")  # what method_frontier reads


def cmd_compare(args: argparse.Namespace) -> int:
    """`prm compare`: the shard stage on the pool (what is done is reused), the pool grown by shards until the largest
    budget caps no method (up to --max-shards), then the compare job; its frontier table at the end."""
    start = time.time()
    args = absolute_paths(args)
    given = args.assets
    args.assets, args.implicit_losses = ",".join(COMPARE_NEEDS), "none"
    try:
        plan = plan_run(args)
        if given is not None:
            raise FlagProblems([f"--assets {given}: `prm compare` runs what the frontier reads ({', '.join(COMPARE_NEEDS)}) "
                                "and then the compare job"])
        from prm_core.compare.frontier import METHODS, STOCK

        if unknown := [m for m in args.methods if m not in METHODS + STOCK]:
            raise FlagProblems([f"--methods: unknown {', '.join(unknown)}; known: {', '.join(METHODS + STOCK)}"])
        if plan.domain != "arith" or args.source != "arith":
            raise FlagProblems(["the frontier needs the arith testbed's exact labels (the oracle, ActPRM's exact judge, "
                                "the benchmark sets): leave --domain and --source out"])
    except FlagProblems as e:
        return _flag_errors("prm compare", e)
    return _holding_the_data_dir("prm compare", args, plan, lambda: _compare(args, plan, start))


def _compare(args: argparse.Namespace, plan: RunPlan, start: float) -> int:
    import dataclasses

    import dagster as dg

    from assets.common.partitions import shards

    known = len(dg.DagsterInstance.get().get_dynamic_partitions(shards.name))  # an earlier compare may have grown it
    from assets.common.models import actprm_dir
    from assets.common.resources import StorageResource

    if (actprm_dir(StorageResource(base_dir=os.environ["PRM_DATA_DIR"])) / "actprm.json").exists():
        args.assets = ",".join(a for a in COMPARE_NEEDS if a != "actprm_model")  # its thresholds are chosen: kept
        plan = plan_run(args)
    if rc := _execute(args, plan, start, report=False):  # the run's own shards, ActPRM's thresholds chosen on them
        return rc
    wanted = _pool_wanted(args.budgets, args.methods, list(plan.shard_keys))
    have = max(args.shards, known)
    grown = min(args.max_shards, max(have, -(-wanted // args.shard_size)))
    print(f"prm compare: the budgets buy up to {wanted} problems; the pool has {have * args.shard_size} ({have} shards)"
          + (f", grown to {grown} shards" if grown > have else "")
          + (f" (--max-shards {args.max_shards}: points beyond it are marked capped)" if wanted > grown * args.shard_size else ""),
          file=sys.stderr)
    if grown > args.shards:  # ActPRM's thresholds stay those chosen on the pool as it was (dev never grows)
        args.shards, args.assets = grown, ",".join(a for a in COMPARE_NEEDS if a != "actprm_model")
        plan = plan_run(args)
        if rc := _execute(args, plan, start, report=False):
            return rc
    compare = dataclasses.replace(plan, shard_keys=(), stages=(RunStage("compare_pipeline", (), ("method_frontier",), None),))
    if rc := _execute(args, compare, start, report=False):
        return rc
    from prm_core.compare.frontier import format_frontier
    from prm_core.lineage.storage import read_parquet

    reports = Path(os.environ["PRM_DATA_DIR"]) / "reports"
    print(format_frontier(read_parquet(reports / "method_frontier.parquet").to_dicts(),
                          read_parquet(reports / "method_frontier_paired.parquet").to_dicts()))
    print(f"prm: compare finished in {time.time() - start:.0f} s (command wall time); the frontier: "
          f"{reports / 'method_frontier.parquet'}, `prm ui` shows its plot", file=sys.stderr)
    return 0


def _pool_wanted(budgets: tuple[int, ...], methods: tuple[str, ...], keys: list[str]) -> int:
    """How many problems the budgets buy the cheapest method, measured on the pool as it is."""
    from assets.common.resources import DomainResource, StorageResource
    from assets.method_frontier import MethodFrontierConfig, frontier_inputs
    from prm_core.compare.points import pool_wanted

    config = MethodFrontierConfig(budgets=list(budgets), methods=list(methods))
    x = frontier_inputs(StorageResource(base_dir=os.environ["PRM_DATA_DIR"]), DomainResource().get(), keys, config)
    return pool_wanted(x, budgets, methods)


def _execute(args: argparse.Namespace, plan, start: float, report: bool = True) -> int:
    """`plan`'s Dagster runs, one after the other, then (`report`) the summary and where the time went."""
    import dagster as dg

    from assets.common.partitions import shards
    from orchestration.launch import SHARD_JOBS, partition_ranges

    instance = dg.DagsterInstance.get()
    for run_id in fail_abandoned_runs(instance):
        print(f"prm: run {run_id} was left STARTED by a process that is gone; marked failed", file=sys.stderr)
    keys = plan.shard_keys
    known = set(instance.get_dynamic_partitions(shards.name))
    new = [k for k in keys if k not in known]
    if new:
        instance.add_dynamic_partitions(shards.name, new)
    if keys:
        print(f"prm: {len(keys)} shards ({len(new)} new), data in {os.environ['PRM_DATA_DIR']}, "
              f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}", file=sys.stderr)
    for name, why in plan.skipped_files:  # never silently: a file whose rows are not read is named, with why
        print(f"prm: skipped {Path(args.source) / name}: {why}", file=sys.stderr)
    config = run_config(args)
    tags = run_tags(args, plan, start)
    order = instance.get_dynamic_partitions(shards.name)  # the order Dagster's partition ranges follow
    runs = [(stage, first, last) for stage in plan.stages  # one Dagster run per partition range: shards, losses, sets
            for first, last in (partition_ranges(stage.partition_keys, order) if stage.job in SHARD_JOBS
                                else [(stage.partition_keys[0], stage.partition_keys[-1])] if stage.partition_keys
                                else [(None, None)])]  # an unpartitioned job (compare)
    previous = {sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}  # as Ctrl-C
    try:
        return _run_stages(args, plan, start, instance, runs, config, tags, report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


DISK_ERRORS = ("No space left on device", "Read-only file system", "Disk quota exceeded")


def disk_problem(failures: list[str], data_dir: str) -> str | None:
    """A step that failed because the disk is full or read-only, as one line naming the data dir and its free space
    (finished work is intact: every table and model is written atomically)."""
    from orchestration.cli_checks import free_space
    from prm_core.lineage.storage import as_path, is_local

    for failure in failures:
        if why := next((e for e in DISK_ERRORS if e in failure), None):
            where = f"{data_dir} ({free_space(Path(data_dir))} free)" if data_dir and is_local(as_path(data_dir)) else data_dir
            return (f"{failure.split(':', 1)[0]}: {why.lower()} writing into the data dir {where}; finished work is kept: "
                    "make room and rerun to resume")
    return None


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _run_stages(args, plan, start: float, instance, runs, config: dict, tags: dict, report: bool = True) -> int:
    import dagster as dg

    from orchestration.launch import SHARD_JOBS, LaunchError, cancel, failures, launched, stop_session, submit, wait
    from orchestration.stage_lines import StageLines

    run_id, run_ids = None, []
    for number, (stage, first, last) in enumerate(runs, 1):
        job_name = stage.job
        ops = {k: v for k, v in config["ops"].items() if k in stage.assets}
        chosen = list(stage.selection) if stage.selection else None
        run_id = str(uuid.uuid4())
        unit = "shard" if job_name in SHARD_JOBS else "partition"
        follow = StageLines(instance, run_id, f"{number}/{len(runs)} {job_name}",
                            "unpartitioned" if first is None else f"{unit}s {first}..{last}" if first != last
                            else f"{unit} {first}", unit)
        session = None
        ranged = {} if first is None else {RANGE_START: first, RANGE_END: last}
        try:
            proc = submit(job_name, {**config, "ops": ops}, {**ranged, **tags}, chosen, project_root(), run_id,
                          verbose=args.verbose)
            session = proc.pid
            launched(proc, job_name, follow)
            run_ids.append(run_id)
            run = wait(instance, run_id, follow=follow)
            stop_session(session)  # its code server, idle now, would otherwise linger for its heartbeat's timeout
        except LaunchError as e:
            print(f"prm: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            run = cancel(instance, run_id, session)
            status = f"run {run_id} of {job_name} {run.status.value.lower()}; " if run is not None else ""
            print(f"prm: interrupted; finished work is kept; rerun to resume ({status}see `prm ui`)", file=sys.stderr)
            return 130
        if run.status != dg.DagsterRunStatus.SUCCESS:
            found = failures(instance, run_id)
            disk = disk_problem(found, os.environ["PRM_DATA_DIR"])
            for line in [disk] if disk else found:
                print(f"prm: {line}", file=sys.stderr)
            print(f"prm: run {run_id} of {job_name} {run.status.value.lower()} after {time.time() - start:.0f} s "
                  "(see `prm ui` for the full log)", file=sys.stderr)
            return 1
    wall = time.time() - start
    from orchestration.launch import stage_seconds
    from prm_core.lineage.summary import STAGE_PREFIX, format_headline, format_stage_table, stage_keys, update_summary

    if not report:
        return 0
    # where the run's time went: seconds per asset, the same table in the summary (`run.stage_seconds.<asset>`)
    summary = update_summary(os.environ["PRM_DATA_DIR"], stage_keys(stage_seconds(instance, run_ids, wall)), STAGE_PREFIX)
    if args.json:
        print_summary(summary, as_json=True)
    else:  # the end of a run: where its time went and the numbers it is quoted by; every key: `prm summary`
        print(f"where the run's time went:\n{format_stage_table(summary)}\n\nheadline:\n{format_headline(summary)}\n\n"
              f"all {len(summary)} summary keys: prm summary --data-dir {os.environ['PRM_DATA_DIR']}")
    if summary.get("pool.quarantined"):
        print(f"prm: {summary['pool.quarantined']} malformed problem rows quarantined, with file, line and reason, in "
              f"{Path(os.environ['PRM_DATA_DIR']) / 'problem_pool_quarantine'}", file=sys.stderr)
    if summary.get("pool.skipped_files"):
        print(f"prm: {summary['pool.skipped_files']} entries of the source folder not read, with file and reason, in "
              f"{Path(os.environ['PRM_DATA_DIR']) / 'problem_pool_skipped.parquet'}", file=sys.stderr)
    record_dvc_state()
    print(f"prm: run {run_id} finished in {wall:.0f} s (command wall time)", file=sys.stderr)
    return 0


def record_dvc_state() -> None:
    """`dvc.lock` for what the run wrote into the project's data/, so that `dvc status` is true right after a run;
    a run still counts when DVC is missing or fails (said in one line)."""
    from orchestration.release import ReleaseError, commit_run_outputs

    try:
        done = commit_run_outputs(project_root(), Path(os.environ["PRM_DATA_DIR"]))
    except ReleaseError as e:
        print(f"prm: dvc.lock not updated ({str(e).splitlines()[0][:300]}); `dvc status` shows the outputs as changed",
              file=sys.stderr)
        return
    if done:
        print(f"prm: recorded {', '.join(done)} in dvc.lock: `dvc status` now says what changes after this run",
              file=sys.stderr)


def print_summary(summary: dict, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    try:
        from rich.console import Console
        from rich.table import Table

        from prm_core.lineage.summary import format_value

        table = Table(title="PRM Foundry — run summary")
        table.add_column("key")
        table.add_column("value", justify="right")
        for key in sorted(summary):
            table.add_row(key, format_value(summary[key]))
        Console().print(table)
    except ImportError:
        from prm_core.lineage.summary import format_summary

        print(format_summary(summary))


def cmd_summary(args: argparse.Namespace) -> int:
    set_env_defaults(args.data_dir, create_instance=False)
    from prm_core.lineage.summary import format_stage_table, missing_stages, read_summary, summary_path

    summary = read_summary(os.environ["PRM_DATA_DIR"])
    if not summary:
        print(f"prm: no summary at {summary_path(os.environ['PRM_DATA_DIR'])}; run `prm run` first", file=sys.stderr)
        return 1
    print_summary(summary, as_json=args.json)
    if not args.json and (table := format_stage_table(summary)):
        print(f"\nwhere the last run's time went:\n{table}")
    if missing := missing_stages(summary):  # said on stderr, so `--json` stays the summary alone
        print(f"prm: this summary is partial: no results yet from {', '.join(missing)} (a run stopped before them, or "
              f"ran a subset); `prm run --data-dir {os.environ['PRM_DATA_DIR']}` makes them", file=sys.stderr)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    set_env_defaults(args.data_dir)
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-m", "orchestration.definitions", "-p", str(args.port)]
    print(f"prm: DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(cmd)}", file=sys.stderr)
    os.chdir(project_root())
    os.execv(cmd[0], cmd)


def cmd_release(args: argparse.Namespace) -> int:
    set_env_defaults(args.data_dir, create_instance=args.action != "verify")
    from orchestration.release import ReleaseError, make_release, verify_release

    root = project_root()
    try:
        if args.action == "verify":
            if not args.name:
                raise ReleaseError("usage: prm release verify NAME|MANIFEST")
            manifest, problems, notes = verify_release(root, args.name)
            for n in notes:
                print(f"prm: note: {n}", file=sys.stderr)
            for p in problems:
                print(f"prm: {p}", file=sys.stderr)
            if problems:
                print(f"prm: release {manifest.name} FAILED verification ({len(problems)} problems)", file=sys.stderr)
                return 1
            print(f"prm: release {manifest.name} verified: {len(manifest.files)} files, git {manifest.git_sha[:10]}, "
                  f"tag {manifest.git_tag}, MLflow run {manifest.mlflow.get('run_id', '-')}")
            return 0
        import dagster as dg

        from orchestration.jobs import pipeline_keys
        from assets.common.lock import DataDirBusy, data_dir_lock

        asset_keys, check_keys = pipeline_keys()
        data_dir = Path(os.environ["PRM_DATA_DIR"])
        try:  # never a release of a data dir that a run is writing
            with data_dir_lock(data_dir, command="prm release", hint="let it finish"):
                manifest, seconds = make_release(args.action, root, data_dir, dg.DagsterInstance.get(), asset_keys,
                                                 check_keys, remote=args.remote, allow_dirty=args.allow_dirty)
        except DataDirBusy as e:
            print(f"prm release: {e}", file=sys.stderr)
            return 1
        print(f"prm: release {manifest.name}: {len(manifest.files)} files, tag {manifest.git_tag}, "
              f"MLflow model {manifest.mlflow['model_name']} v{manifest.mlflow['model_version']}, "
              f"manifest releases/{manifest.name}/manifest.json ({seconds:.1f} s)")
        return 0
    except ReleaseError as e:
        print(f"prm: {e}", file=sys.stderr)
        return 1


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows every default that is a value (an unset option's help says what it falls back to)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from prm_core.compare.frontier import METHODS as FRONTIER_METHODS
    from prm_core.generation.policy import PolicyConfig  # the defaults are the library's (light imports: no torch)
    from prm_core.prm.backbone import BackboneConfig
    from prm_core.prm.discriminative import PRMTrainConfig

    parser = argparse.ArgumentParser(prog="prm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = DefaultsHelp
    sub = parser.add_subparsers(dest="command", required=True)
    flags = argparse.ArgumentParser(add_help=False)  # the flags of `prm run`, which `prm compare` shares
    flags.add_argument("--source", default="arith", help="`arith` or a folder of problem files (one shard per file)")
    flags.add_argument("--shards", type=at_least(1, MAX_SHARDS), default=2, help="generated shards (arith)")
    flags.add_argument("--shard-size", type=at_least(1, MAX_SHARD_SIZE), default=80, help="problems per generated shard (arith)")
    flags.add_argument("--samples", type=at_least(1), default=8, help="responses per problem (N: SCAN's self-confidence is their pass rate)")
    flags.add_argument("--policy-steps", type=at_least(1), default=PolicyConfig.train_steps, help="policy optimizer steps")
    flags.add_argument("--eval-problems", type=at_least(1), default=500, help="held-out problems for the policy's accuracy")
    flags.add_argument("--seed", type=at_least(0, MAX_SEED), default=0, help="one seed for every stage")
    flags.add_argument("--domain", choices=["arith", "gsm8k", "math"], default=None,
                     help="problem domain (gsm8k/math: graded by math-verify, needs --policy)")
    flags.add_argument("--policy", default=None, help="a pretrained policy directory instead of training the tiny one")
    flags.add_argument("--prm-backbone", default=None,
                     help="a local causal-LM directory (Llama, Qwen2, Mistral, Gemma, ...) as the PRM's backbone")
    flags.add_argument("--engine", choices=["auto", "vllm", "transformers", "openai"], default=None,
                     help="generation engine (default: $PRM_ENGINE, else auto: vLLM on a GPU or for big models, "
                          "our transformers decode loop for small models on a CPU; openai: the server at $PRM_BASE_URL)")
    flags.add_argument("--data-dir", default=None, help="where the data goes (default $PRM_DATA_DIR or ./data)")
    flags.add_argument("--bench-per-class", type=at_least(1), default=300, help="ProcessBench-style set: erroneous and all-correct responses each")
    flags.add_argument("--bon-problems", type=at_least(1), default=500, help="held-out problems for best-of-N")
    flags.add_argument("--backbone-steps", type=at_least(0), default=BackboneConfig.train_steps,
                     help="extra LM steps that make the PRM backbone")
    flags.add_argument("--actprm-mc-judge", action="store_true",
                     help="also run ActPRM's active pass with SCAN's MC labeller as the judge (~80 small generation calls)")
    flags.add_argument("--prm-steps", type=at_least(1), default=PRMTrainConfig.steps, help="PRM training steps")
    flags.add_argument("--implicit-losses", default="ce,dpo",
                     help="implicit PRMs to train from outcome labels: a list of ce,dpo,kto,nca, `all` or `none`")
    flags.add_argument("--processbench", default=None,
                     help="folder of the real ProcessBench split files (default ../shared/data/processbench)")
    flags.add_argument("--prmbench", default=None,
                     help="folder of PRMBench's subset400.jsonl (default ../shared/data/prmbench)")
    flags.add_argument("--assets", default=None, help="comma-separated subset of the job's assets (as dvc.yaml's stages do)")
    flags.add_argument("--log-level", default="CRITICAL", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     help="the run workers' Dagster console log level (a failed step's error is printed once, by "
                          "prm, whatever the level)")
    flags.add_argument("--json", action="store_true", help="print the summary as JSON")
    flags.add_argument("--quiet", action="store_true", help="no progress bars (the stage lines stay)")
    flags.add_argument("--verbose", action="store_true", help="the run worker's whole output, third-party notes included")
    flags.add_argument("--wait", action="store_true", help="if another prm run holds the data dir, wait for it instead of "
                                                         "refusing")
    run = sub.add_parser("run", parents=[flags], help="materialize the default pipeline and print the summary",
                         formatter_class=defaults)
    run.set_defaults(func=cmd_run)
    compare = sub.add_parser("compare", parents=[flags], formatter_class=defaults,
                             help="every labelling method at matched FLOP budgets (the `compare` job; grows the pool by "
                                  "shards as the budgets need)")
    compare.add_argument("--budgets", type=int_list, default="40,80,160",
                         help="budgets, each vanilla MC's all-in FLOPs on this many problems")
    compare.add_argument("--methods", type=lambda t: tuple(m.strip() for m in t.split(",") if m.strip()),
                         default=",".join(FRONTIER_METHODS),
                         help="methods on the frontier; add vanilla_stock, scan_stock, scan_binary_stock, oracle_stock "
                              "for the stock token classifier fine-tuned whole (the GPU recipe; slow on a CPU)")
    compare.add_argument("--max-shards", type=at_least(1, MAX_SHARDS), default=16,
                         help="the most shards the pool grows to for the budgets (points beyond it are marked capped)")
    compare.set_defaults(func=cmd_compare)
    summary = sub.add_parser("summary", help="print the summary of the last run", formatter_class=defaults)
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.add_argument("--data-dir", default=None, help="the run's data dir (default $PRM_DATA_DIR or ./data)")
    summary.set_defaults(func=cmd_summary)
    release = sub.add_parser("release", help="`prm release NAME` makes a release; `prm release verify NAME` checks one",
                             formatter_class=defaults)
    release.add_argument("action", help="a release NAME, or `verify`")
    release.add_argument("name", nargs="?", help="with `verify`: the release name or a manifest path")
    release.add_argument("--remote", default=None, help="DVC remote to push to (default: the repo's default remote)")
    release.add_argument("--allow-dirty", action="store_true", help="release from a working tree with changes")
    release.add_argument("--data-dir", default=None, help="the data dir to release (default $PRM_DATA_DIR or ./data)")
    release.set_defaults(func=cmd_release)
    ui = sub.add_parser("ui", help="start `dagster dev` on the data dir's Dagster instance", formatter_class=defaults)
    ui.add_argument("--port", type=at_least(1, 65535), default=3000, help="the UI's port")
    ui.add_argument("--data-dir", default=None, help="the data dir the assets read and write (default ./data)")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
