"""One writer per data dir: `prm run` holds an exclusive lock on `<data dir>/.prm.lock` for as long as it runs.

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


class DataDirBusy(RuntimeError):
    pass


def holder_text(path: Path) -> str:
    """Who holds the lock at `path`, as its file says (it may be mid-write: then just that it is held)."""
    try:
        h = json.loads(path.read_text())
        return f"{h['command']} (pid {h['pid']} on {h['host']}, since {h['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another prm process"


@contextlib.contextmanager
def data_dir_lock(data_dir: str | os.PathLike, wait: bool = False, command: str = "prm run",
                  hint: str = "let it finish, or run again with --wait"):
    """Hold `data_dir`'s writer lock for the block: refuse at once (`DataDirBusy`, naming the holder and `hint`), or
    wait for it when `wait`."""
    path = Path(data_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
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
