"""One writer per data dir: `prm run` holds an exclusive lock on `<data dir>/.prm.lock` for as long as it runs, and
so does every Dagster run that `prm run` did not launch (from the UI, the daemon's sensor and schedule), through
the storage resource (`run_lock`).

The lock is the operating system's (`flock`), so a process that dies, however it dies, releases it: the next run takes
it over with nothing to clean up. The file names the holder (pid, host, start time, command) for the message a second
writer gets. A data dir on object storage has no such lock (nothing in fsspec offers one): one writer is the user's
to ensure there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".prm.lock"
PID_TAG, HOST_TAG = "prm/pid", "prm/host"  # the tags naming the `prm` process that launched a run, and its host


def launcher_tags() -> dict[str, str]:
    """The tags naming this process as the launcher of a run (`run_lock`: the run goes on under this process's lock)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


class DataDirBusy(RuntimeError):
    pass


def holder(path: Path) -> dict:
    """The holder's record in the lock file at `path` (empty while it is mid-write or the lock is free)."""
    try:
        h = json.loads(path.read_text())
        return h if isinstance(h, dict) else {}
    except (OSError, ValueError):
        return {}


def holder_text(path: Path) -> str:
    """Who holds the lock at `path`, as its file says (it may be mid-write: then just that it is held)."""
    try:
        h = holder(path)
        return f"{h['command']} (pid {h['pid']} on {h['host']}, since {h['started']})"
    except KeyError:
        return "another prm process"


@contextlib.contextmanager
def data_dir_lock(data_dir: str | os.PathLike, wait: bool = False, command: str = "prm run",
                  hint: str = "let it finish, or run again with --wait", launcher: dict | None = None):
    """Hold `data_dir`'s writer lock for the block: refuse at once (`DataDirBusy`, naming the holder and `hint`), or
    wait for it when `wait`. A block run for `launcher` (`{"pid": .., "host": ..}`, the `prm` process that holds the
    lock while it waits for this block's run) goes on under that lock."""
    path = Path(data_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = holder(path)
            if launcher and (str(h.get("pid")), h.get("host")) == (str(launcher.get("pid")), launcher.get("host")):
                yield
                return
            if not wait:
                raise DataDirBusy(f"data dir {Path(data_dir)} is in use by {holder_text(path)}: {hint}") from None
            print(f"prm: waiting for {holder_text(path)} to finish with {Path(data_dir)}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        info = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def run_lock(data_dir: str | os.PathLike, run) -> contextlib.AbstractContextManager:
    """The lock a Dagster `run` holds on `data_dir` while it runs: its launcher's, when `prm run` launched it (the
    run's tags name that process), else the data dir's own: a run from the UI or the daemon refuses at once, naming
    the holder, while another writer has the data dir."""
    return data_dir_lock(data_dir, command=f"Dagster run {run.run_id} of {run.job_name}", hint="let it finish first",
                         launcher={"pid": run.tags.get(PID_TAG), "host": run.tags.get(HOST_TAG)})
