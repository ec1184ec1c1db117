"""How `prm` reaches Dagster: the instance of a data dir, and real job runs submitted to it.

Each data dir has its own Dagster instance (`<data dir>/dagster_home`, unless `DAGSTER_HOME` is set), so runs and
partitions of two data dirs never share asset pages. A stage of `prm run` is a run of a job of the code location
`orchestration.definitions`, submitted with `dagster job launch`: it goes through the instance's run coordinator
and run launcher, shows under its job in the UI, and runs in a run worker of its own; `prm` waits for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOCATION = "orchestration.definitions"
# the tags that make one run cover a range of partitions (the shards of a run, its label sets, its losses)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
SHARD_JOBS = ("default_pipeline", "text_pipeline")  # partitioned by the dynamic `shards` (orchestration/jobs.py)


def partition_ranges(keys, order: list[str]) -> list[tuple[str, str]]:
    """`keys` as (first, last) ranges of consecutive keys in `order`, the instance's order of dynamic partitions
    (insertion order, not names: a file that sorts first but came last is last there)."""
    wanted, ranges, current = set(keys), [], None
    for key in order:
        if key in wanted:
            current = (current[0] if current else key, key)
        elif current:
            ranges.append(current)
            current = None
    return ranges + ([current] if current else [])
# the instance `prm` creates: runs start at once (no daemon needed); a queued coordinator or another run launcher
# configured here instead works the same way (a queued run waits for `dagster-daemon run` or `prm ui`)
INSTANCE_YAML = """\
# The Dagster instance of this data dir (created by `prm`): CLI runs and `prm ui` share it.
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""


def dagster_home_for(data_dir: str, project: Path) -> Path:
    """`<data dir>/dagster_home` for a local data dir; for object storage one folder per URL under the project."""
    from prm_core.lineage.storage import as_path, is_local

    if is_local(as_path(data_dir)):
        return Path(data_dir).resolve() / "dagster_home"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", data_dir).strip("-")[:40]
    return project / "dagster_home" / f"{slug}-{hashlib.md5(data_dir.encode()).hexdigest()[:8]}"


def ensure_instance(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(INSTANCE_YAML)


# third-party lines that carry no action for the user (`prm run --verbose` shows them): MLflow's notes on logging a
# model and its artifact bars, transformers' weight-loading bars, Dagster's code server starting and stopping
NOISE = re.compile(r"dagster\.code_server|Downloading artifacts|Loading weights|Writing model shards|Registered model '.*' "
                   r"already exists|Created version '\d+' of model|Successfully registered model|python_model` causes it "
                   r"to be serialized using CloudPickle|Validating input example against model signature|Failed to log "
                   r"model config as params|mlflow\.store\.db\.utils: (Creating initial|Updating database)")


CANCELING = threading.Event()  # set by `cancel`: the interrupted steps' tracebacks are not shown (`prm ui` has them)


def _forward(stream, out, verbose: bool = False) -> None:
    """Copy the launch's output (the run worker's logs and progress bars) to `out`, minus `NOISE` unless `verbose`."""
    from orchestration.stage_lines import OUTPUT

    def shown(line: str) -> bool:
        return verbose or not (CANCELING.is_set() or NOISE.search(line))

    buffer = ""
    for chunk in iter(lambda: stream.read1(4096), b""):
        buffer += chunk.decode(errors="replace")
        *lines, buffer = buffer.split("\n")
        with OUTPUT:
            out.write("".join(f"{line}\n" for line in lines if shown(line.rsplit("\r", 1)[-1])))
            if "\r" in buffer:  # a progress bar's update
                done, buffer = buffer.rsplit("\r", 1)
                if shown(done.rsplit("\r", 1)[-1]):
                    out.write(done + "\r")
            out.flush()
    out.write(buffer if shown(buffer) else "")
    out.flush()


def submit(job: str, run_config: dict, tags: dict, assets: list[str] | None, cwd: Path, run_id: str,
           verbose: bool = False) -> subprocess.Popen:
    """Start submitting a run of `job` (only `assets` of it, when given) to the instance as `run_id`; `launched` waits
    for the submission. The code server and the run worker run in a session of their own (the returned process's
    pid): a Ctrl-C reaches `prm` alone, which cancels the run as the UI's Terminate does (`cancel`), instead of the
    worker dying of it as a failure."""
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "job", "launch", "-m", LOCATION, "-j", job, "--run-id", run_id,
           "--config-json", json.dumps(run_config), "--tags", json.dumps(tags)]
    if assets:
        cmd += ["-o", ",".join(assets)]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=_forward, args=(proc.stdout, sys.stderr, verbose), daemon=True).start()
    return proc


def launched(proc: subprocess.Popen, job: str, follow=None) -> None:
    """Wait for `submit`'s launch to end; meanwhile `follow` (a `StageLines` of the run) says each step's start and
    end."""
    while proc.poll() is None:
        if follow is not None:
            follow.poll()
        time.sleep(0.5)
    if proc.returncode != 0:
        stop_session(proc.pid)  # a code server it started may outlive it
        raise LaunchError(f"`dagster job launch -j {job}` failed (exit code {proc.returncode}); its output is above")


def stop_session(session: int, grace_s: float = 5.0) -> None:
    """Every process of a launch's session gone (the code server, a run worker, the PRM trainer it started)."""
    from prm_core.runtime.processes import stop_process_group

    stop_process_group(session, grace_s)


def cancel(instance, run_id: str, session: int | None, grace_s: float = 30.0):
    """Cancel `run_id` the way the UI's Terminate does: marked CANCELING, its run worker interrupted (the step stops,
    Dagster marks the run CANCELED); a worker that does not stop within `grace_s`, or is gone, is stopped and the run
    marked CANCELED here. Then every process of the launch's `session` is stopped. Returns the run (None if it was
    never registered)."""
    run = instance.get_run_by_id(run_id)
    CANCELING.set()
    if run is not None and not run.is_finished:
        instance.report_run_canceling(run, message="`prm` was interrupted")
        pid = worker_pid(instance, run_id)
        try:
            if pid is not None:
                os.kill(pid, signal.SIGINT)
                deadline = time.time() + grace_s
                while not instance.get_run_by_id(run_id).is_finished and time.time() < deadline:
                    time.sleep(0.2)
        except (ProcessLookupError, KeyboardInterrupt):  # a worker already gone; a second Ctrl-C: stop it now
            pass
        run = instance.get_run_by_id(run_id)
        if not run.is_finished:
            instance.report_run_canceled(run, message="`prm` was interrupted; its run worker was stopped")
    if session is not None:
        stop_session(session)
    return instance.get_run_by_id(run_id)


class LaunchError(RuntimeError):
    pass


def wait(instance, run_id: str, poll_s: float = 1.0, follow=None):
    """The run once it has finished (a queued run waits for the daemon to start it, said once); `follow` says its
    steps as they go."""
    import dagster as dg

    said = False
    while True:
        run = instance.get_run_by_id(run_id)
        if follow is not None:
            follow.poll()
        if run is not None and run.is_finished:  # `follow` read its events after its end was read: all of them
            return run
        if run is not None and run.status == dg.DagsterRunStatus.QUEUED and not said:
            print(f"prm: run {run_id} is queued: the instance's run coordinator starts it (a queued coordinator needs "
                  "`dagster-daemon run` or `prm ui` running)", file=sys.stderr)
            said = True
        time.sleep(poll_s)


def failures(instance, run_id: str) -> list[str]:
    """What failed in a run: each failed step with its error, or the run's own failure message."""
    import dagster as dg

    found = []
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        where = f"step {event.step_key}" if event.step_key else "run"
        found.append(f"{where} failed:\n{error.to_string() if error else entry.message}")
    return found


def worker_pid(instance, run_id: str) -> int | None:
    """The process that executes a run (its run worker), from the run's start event."""
    import dagster as dg

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START):
        return entry.dagster_event.pid
    return None


def step_seconds(instance, run_ids: list[str]) -> dict[str, float]:
    """Seconds of each step (an asset, or an asset check run apart) over the runs, in the order they started."""
    steps = [st for run_id in run_ids for st in instance.get_run_step_stats(run_id)
             if st.start_time is not None and st.end_time is not None]
    out: dict[str, float] = {}
    for st in sorted(steps, key=lambda st: st.start_time):
        out[st.step_key] = out.get(st.step_key, 0.0) + (st.end_time - st.start_time)
    return out


def stage_seconds(instance, run_ids: list[str], wall: float) -> dict[str, float]:
    """The stage table of one `prm run`: seconds per step of its runs, and `other` for the rest of its `wall`
    seconds (launching each run, loading the code location, process start and shut-down)."""
    steps = step_seconds(instance, run_ids)
    return {**steps, "other": max(0.0, wall - sum(steps.values()))}
