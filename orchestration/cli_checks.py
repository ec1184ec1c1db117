"""What `prm run` checks before any work: every flag's value (one line naming the flag, exit code 2, no
traceback), checked once into the plan the run executes (`plan_run`), and runs that a killed `prm` process left
STARTED in the Dagster instance (marked failed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from assets.common.lock import HOST_TAG, PID_TAG


def free_space(path: Path) -> str:
    """The free space of the file system holding `path` (or its nearest existing parent), e.g. `1.2 GB`."""
    import shutil

    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    unit, size = next(((u, s) for u, s in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if free >= s), ("B", 1))
    return f"{free / size:.1f} {unit}"


def _data_dir_problem(flag_value: str | None) -> str | None:
    """The data dir (`--data-dir`, else $PRM_DATA_DIR, else the project's data/) made and written once before any
    work: one that is a file, unwritable, read-only or on a full disk is one line naming it, why and the free space
    there. Object storage is checked by the run itself."""
    from assets.common.paths import project_root
    from prm_core.lineage.storage import as_path, is_local

    data_dir = flag_value or os.environ.get("PRM_DATA_DIR") or str(project_root() / "data")
    name = f"--data-dir {data_dir}" if flag_value else f"data dir {data_dir}"
    if not is_local(as_path(data_dir)):
        return None
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        return f"{name}: is a file, not a folder"
    made = [p for p in [path, *path.parents] if not p.exists()]  # what the probe makes, and removes again
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".prm-write-check-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        return f"{name}: cannot write there ({e.strerror or e}; {free_space(path)} free)"
    finally:
        for p in made:  # deepest first: checking leaves the file system as it found it
            with contextlib.suppress(OSError):
                p.rmdir()
    return None


def at_least(low: int, high: int | None = None):
    """An argparse type: an integer ≥ `low` (and ≤ `high`; argparse names the flag in its one-line error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}")
        return value

    parse.__name__ = f"integer ≥ {low}" if high is None else f"integer in [{low}, {high}]"
    return parse


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers ≥ 1, in increasing order without repeats (`--budgets 40,80,160`)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers of at least 1, got {text!r}")
    return tuple(sorted(set(values)))


int_list.__name__ = "comma-separated integers ≥ 1"


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


@dataclass(frozen=True)
class RunStage:
    """One Dagster run of a `prm run`: `job` over one range of partition keys."""

    job: str
    partition_keys: tuple[str, ...]
    assets: tuple[str, ...]  # what it materializes (the ops whose config it gets)
    selection: tuple[str, ...] | None  # `--assets`' share of the job; None: the whole job


@dataclass(frozen=True)
class RunPlan:
    """What a `prm run` does, from its flags checked once: `cmd_run` executes it and parses nothing again."""

    shard_keys: tuple[str, ...]  # `arith-0000`.. for the generator, file stems for a folder of problem files
    implicit_ranges: tuple[tuple[str, ...], ...]  # implicit losses, as runs of contiguous partition keys
    selection: tuple[str, ...] | None  # `--assets`, or None: every asset
    domain: str  # --domain, else $PRM_DOMAIN, else arith
    engine: str  # --engine, else $PRM_ENGINE, else auto
    data_dir: str | None
    environ: dict[str, str]  # what the run sets in the environment (its run workers inherit it)
    stages: tuple[RunStage, ...]  # the Dagster runs, in order: shards, implicit losses, label sets
    skipped_files: tuple[tuple[str, str], ...] = ()  # the source folder's entries that are not read: (name, why)


class FlagProblems(ValueError):
    """`prm run`'s flags are wrong: `problems`, one line each, each naming its flag."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _shard_keys(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str | None]:
    """The run's shard keys, the source folder's entries that are not read (name, why), and what is wrong with
    `--source` (None: nothing)."""
    from prm_core.domains.problems import ProblemFileError, shard_key
    from prm_core.domains.source_folder import scan_problem_folder, with_problem_files

    if args.source == "arith":
        return tuple(shard_key(i) for i in range(args.shards)), (), None
    try:
        found, skipped = scan_problem_folder(args.source)
        return tuple(with_problem_files(args.source, found, skipped)), tuple(skipped), None
    except ProblemFileError as e:
        return (), (), f"--source: {e}"


def _stages(keys: tuple[str, ...], ranges: tuple[tuple[str, ...], ...], selection: tuple[str, ...] | None,
            arith: bool) -> tuple[RunStage, ...]:
    """The Dagster runs, one per partition range (shards, implicit losses, label sets); one `--assets` leaves
    empty is none."""
    from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE, TEXT_SHARD_STAGE, label_set_keys

    first = ("default_pipeline", keys, SHARD_STAGE) if arith else ("text_pipeline", keys, TEXT_SHARD_STAGE)
    stages = [first, *(("implicit_pipeline", r, IMPLICIT_STAGE) for r in ranges),
              ("prm_pipeline", tuple(label_set_keys(arith)), PRM_STAGE)]
    out = []
    for job, partition_keys, names in stages:
        chosen = tuple(n for n in names if n in selection) if selection else None
        if chosen != ():
            out.append(RunStage(job, tuple(partition_keys), chosen or tuple(names), chosen))
    return tuple(out)


PATH_FLAGS = ("source", "policy", "prm_backbone", "processbench", "prmbench", "data_dir")


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with every local path flag made absolute against the caller's working directory (the run worker starts
    elsewhere); URLs (`s3://…`) and `--source arith` stay as given."""
    import os

    out = argparse.Namespace(**vars(args))
    for name in PATH_FLAGS:
        value = getattr(out, name, None)
        if value and "://" not in value and not (name == "source" and value == "arith"):
            setattr(out, name, os.path.abspath(os.path.expanduser(value)))
    return out


def plan_run(args: argparse.Namespace) -> RunPlan:
    """`prm run`'s plan from its flags; raises FlagProblems with every problem the type checks cannot see."""
    keys, skipped, source_problem = _shard_keys(args)
    problems: list[str] = [source_problem] if source_problem else []
    try:
        ranges = tuple(tuple(r) for r in implicit_ranges(args.implicit_losses))
    except ValueError as e:
        ranges = ()
        problems.append(f"--implicit-losses {args.implicit_losses}: {e}")
    domain = args.domain or os.environ.get("PRM_DOMAIN", "arith")
    selection = None
    if args.assets is not None:
        from orchestration.jobs import IMPLICIT_STAGE, PRM_STAGE, SHARD_STAGE, TEXT_SHARD_STAGE

        selection = tuple(a.strip() for a in args.assets.split(",") if a.strip())
        known = (SHARD_STAGE if domain == "arith" else TEXT_SHARD_STAGE) + IMPLICIT_STAGE + PRM_STAGE
        if not selection:
            problems.append("--assets: empty; name at least one asset (or leave the flag out for the whole pipeline)")
        elif unknown := sorted(set(selection) - set(known)):
            problems.append(f"--assets: unknown {', '.join(unknown)}; the pipeline's assets are {', '.join(known)}")
        for flag, value, asset in (("--policy", args.policy, "policy_model"), ("--prm-backbone", args.prm_backbone, "prm_backbone")):
            if value and selection and asset not in selection:  # else the flag would be silently ignored
                problems.append(f"{flag} {value}: sets the {asset} asset, which --assets leaves out; add {asset} to --assets")
    problems += [p for p in (_model_dir("--policy", args.policy), _model_dir("--prm-backbone", args.prm_backbone),
                             _folder("--processbench", args.processbench), _folder("--prmbench", args.prmbench)) if p]
    if args.domain not in (None, "arith") and not args.policy:
        problems.append(f"--domain {args.domain}: needs --policy DIR (the tiny policy only learns the arith testbed)")
    problems += [p for p in [_data_dir_problem(args.data_dir)] if p]
    if args.engine == "vllm":
        from prm_core.generation.engines import vllm_available

        if not vllm_available():
            problems.append("--engine vllm: vLLM is not importable here; use --engine transformers (or auto)")
    if (args.engine or os.environ.get("PRM_ENGINE")) == "openai" and not os.environ.get("PRM_BASE_URL"):
        problems.append("--engine openai: set PRM_BASE_URL to the server's API root (e.g. http://127.0.0.1:8000/v1)")
    if problems:
        raise FlagProblems(problems)
    environ = {"PRM_PROGRESS": "0" if args.quiet else "1", **({"PRM_ENGINE": args.engine} if args.engine else {}),
               **({"PRM_DOMAIN": args.domain} if args.domain else {})}
    return RunPlan(shard_keys=keys, implicit_ranges=ranges, selection=selection, domain=domain,
                   engine=args.engine or os.environ.get("PRM_ENGINE", "auto"), data_dir=args.data_dir,
                   environ=environ, stages=_stages(keys, ranges, selection, domain == "arith"), skipped_files=skipped)


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
