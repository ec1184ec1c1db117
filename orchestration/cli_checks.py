"""What `prm run` checks before any work: every flag's value (one line naming the flag, exit code 2, no
traceback), and runs that a killed `prm` process left STARTED in the Dagster instance (marked failed).
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

PID_TAG, HOST_TAG = "prm/pid", "prm/host"


def at_least(low: int):
    """An argparse type: an integer ≥ `low` (argparse names the flag in its one-line error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def _model_dir(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value)
    if not p.is_dir():
        return f"{flag} {value}: no such folder"
    if not (p / "config.json").exists():
        return f"{flag} {value}: not a Hugging Face model folder (no config.json)"
    return None


def _folder(flag: str, value: str | None) -> str | None:
    if value is not None and not Path(value).is_dir():
        return f"{flag} {value}: no such folder"
    return None


def implicit_ranges(spec: str) -> list[list[str]]:
    """The implicit losses to train (`ce,dpo`, `all`, `none`) as runs of contiguous partition keys (one Dagster run
    covers one range)."""
    from assets.common.partitions import implicit_losses

    order = implicit_losses.get_partition_keys()
    wanted = [] if spec == "none" else order if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    bad = [w for w in wanted if w not in order]
    if bad:
        raise ValueError(f"unknown implicit losses {bad}; choose from {', '.join(order)}, `all` or `none`")
    ranges: list[list[str]] = []
    for key in order:
        if key in wanted:
            if ranges and order.index(ranges[-1][-1]) == order.index(key) - 1:
                ranges[-1].append(key)
            else:
                ranges.append([key])
    return ranges


def run_problems(args: argparse.Namespace) -> list[str]:
    """Every problem with `prm run`'s flags that the type checks cannot see, one line each (empty: all fine)."""
    problems = []
    if args.source != "arith":
        from prm_core.domains.problems import ProblemFileError, problem_files

        try:
            problem_files(args.source)
        except ProblemFileError as e:
            problems.append(f"--source: {e}")
    try:
        implicit_ranges(args.implicit_losses)
    except ValueError as e:
        problems.append(f"--implicit-losses {args.implicit_losses}: {e}")
    if args.assets is not None:
        from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE, TEXT_SHARD_STAGE

        names = [a.strip() for a in args.assets.split(",") if a.strip()]
        arith = (args.domain or os.environ.get("PRM_DOMAIN", "arith")) == "arith"
        known = (SHARD_STAGE if arith else TEXT_SHARD_STAGE) + IMPLICIT_STAGE + PRM_STAGE
        if not names:
            problems.append("--assets: empty; name at least one asset (or leave the flag out for the whole pipeline)")
        elif unknown := sorted(set(names) - set(known)):
            problems.append(f"--assets: unknown {', '.join(unknown)}; the pipeline's assets are {', '.join(known)}")
    problems += [p for p in (_model_dir("--policy", args.policy), _model_dir("--prm-backbone", args.prm_backbone),
                             _folder("--processbench", args.processbench), _folder("--prmbench", args.prmbench)) if p]
    if args.domain not in (None, "arith") and not args.policy:
        problems.append(f"--domain {args.domain}: needs --policy DIR (the tiny policy only learns the arith testbed)")
    if args.data_dir and Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        problems.append(f"--data-dir {args.data_dir}: is a file, not a folder")
    if args.engine == "vllm":
        from prm_core.generation.engines import vllm_available

        if not vllm_available():
            problems.append("--engine vllm: vLLM is not importable here; use --engine transformers (or auto)")
    return problems


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not: an orphan killed before init reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (not Linux), or gone meanwhile
        return stat.parent.exists() or not Path("/proc").exists()


def process_tags() -> dict[str, str]:
    """Tags naming the `prm` process and host that submitted a run."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def fail_abandoned_runs(instance) -> list[str]:
    """Mark failed every STARTED run submitted by `prm` on this host whose run worker no longer exists (killed);
    returns their ids. Runs of live workers, other hosts and other launchers (the UI's, which Dagster's run
    monitoring watches) are left alone."""
    import dagster as dg

    from orchestration.launch import worker_pid

    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if PID_TAG not in run.tags or run.tags.get(HOST_TAG) != socket.gethostname():
            continue
        pid = worker_pid(instance, run.run_id)
        if pid is None or _alive(pid):
            continue
        instance.report_run_failed(run, message=f"marked failed by a later `prm run`: its run worker {pid} on "
                                                 f"{run.tags[HOST_TAG]} is gone (killed or crashed) while the run was STARTED")
        failed.append(run.run_id)
    return failed
