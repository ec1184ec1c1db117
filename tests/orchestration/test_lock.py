"""One writer per data dir: a second `prm run` refuses at once naming the holder, or waits; a dead holder's lock is free."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assets.common.lock import DataDirBusy, data_dir_lock

ROOT = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from assets.common.lock import data_dir_lock\nwith data_dir_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"


def _holder(data_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_free(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(DataDirBusy, match=rf"in use by prm run \(pid {holder.pid} on .*since .*--wait"):
            with data_dir_lock(tmp_path):
                pass
    finally:
        holder.kill()  # dies without releasing anything itself
        holder.wait()
    with data_dir_lock(tmp_path):  # the OS released it with the process
        assert f'"pid": {os.getpid()}' in (tmp_path / ".prm.lock").read_text()
    assert (tmp_path / ".prm.lock").read_text() == ""  # released: no holder named


def test_wait_takes_the_lock_when_the_holder_lets_go(tmp_path):
    got = []

    def second():
        with data_dir_lock(tmp_path, wait=True):
            got.append(time.monotonic())

    with data_dir_lock(tmp_path):
        t = threading.Thread(target=second)
        start = time.monotonic()
        t.start()
        time.sleep(0.5)
        assert not got  # still waiting
    t.join(10)
    assert got and got[0] - start >= 0.5


def test_prm_run_on_a_data_dir_in_use_exits_1_with_one_line(tmp_path):
    data = tmp_path / "data"
    holder = _holder(data)
    try:
        env = {**os.environ, "PRM_DATA_DIR": str(data), "PRM_ENGINE": "transformers"}
        env.pop("DAGSTER_HOME", None)
        start = time.monotonic()
        r = subprocess.run([str(Path(sys.executable).with_name("prm")), "run", "--quiet"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"prm run: data dir {data} is in use by prm run (pid {holder.pid} on ")
    assert lines[0].endswith("let it finish, or run again with --wait")
    assert time.monotonic() - start < 60 and not (data / "problem_pool").exists()  # refused before any work


def test_a_run_prm_did_not_launch_refuses_while_another_writer_holds_the_data_dir(tmp_path):
    """A materialization from the UI or the daemon (any run without its launcher's tags) takes the data dir's lock
    through the storage resource: refused, naming the holder, while `prm run` holds it; a run that `prm run`
    launched goes on under its launcher's lock; with the data dir free, the run holds the lock itself."""
    import socket

    import dagster as dg

    from assets.common.lock import HOST_TAG, PID_TAG
    from assets.common.resources import StorageResource

    seen = []

    @dg.asset
    def touch(storage: StorageResource) -> None:
        seen.append((storage.root / ".prm.lock").read_text())

    resources = {"storage": StorageResource(base_dir=str(tmp_path))}
    holder = _holder(tmp_path)
    try:
        refused = dg.materialize([touch], resources=resources, raise_on_error=False)
        launched = dg.materialize([touch], resources=resources,
                                  tags={PID_TAG: str(holder.pid), HOST_TAG: socket.gethostname()})
    finally:
        holder.kill()
        holder.wait()
    assert not refused.success and len(seen) == 1
    (failure,) = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE or e.is_failure]
    assert f"is in use by prm run (pid {holder.pid} on " in str(refused.all_events), failure
    assert launched.success and f'"pid": {holder.pid}' in seen[0]  # ran under its launcher's lock
    alone = dg.materialize([touch], resources=resources)
    assert alone.success and f'"command": "Dagster run {alone.run_id} of __ephemeral_asset_job__"' in seen[1]
    assert (tmp_path / ".prm.lock").read_text() == ""  # released at the run's end
