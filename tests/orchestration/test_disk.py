"""A data dir that cannot be written: unwritable, read-only or full before the run (one line, exit 2, no work), or
full during it (one line naming the data dir and its free space, exit 1, finished work intact)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.cli import disk_problem


def _prm(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture
def tmpfs(tmp_path):
    """A mount point for a tiny tmpfs (root only; the machines this project runs on and its CI are root)."""
    mounted = []

    def mount(size: str, *options: str) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)])


def _env(tmp_path, data):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return {**env, "PRM_DATA_DIR": str(data), "PRM_ENGINE": "transformers"}


def test_an_unwritable_data_dir_is_one_line_before_any_work(tmp_path, tmpfs):
    readonly = tmpfs("1m", "ro")
    full = tmpfs("64k")
    subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k", "count=100"], capture_output=True)
    cases = {"/proc/prm-data": "cannot write there (No such file or directory",
             str(readonly / "d"): "cannot write there (Read-only file system; ",
             str(full / "d"): "cannot write there (No space left on device; 0.0 B free)"}
    for data, why in cases.items():
        r = _prm(["run", "--data-dir", data], _env(tmp_path, data), tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        (line,) = r.stderr.splitlines()
        assert line.startswith(f"prm run: error: --data-dir {data}: {why}") and line.endswith(" free)"), line


def test_a_disk_that_fills_during_the_run_is_one_line_naming_the_data_dir_and_its_free_space(tmp_path, tmpfs):
    data = tmpfs("2m") / "data"  # the instance and the pool fit; the policy's weights do not
    r = _prm(["run", "--shards", "1", "--shard-size", "2", "--policy-steps", "5", "--eval-problems", "2", "--quiet",
              "--assets", "problem_pool,policy_model"], _env(tmp_path, data), tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Stack Trace" not in r.stderr, r.stderr[-3000:]
    line = [x for x in r.stderr.splitlines() if "no space left on device" in x]
    assert len(line) == 1 and line[0].startswith("prm: step policy_model failed: no space left on device writing into "
                                                 f"the data dir {data} ("), r.stderr
    assert line[0].endswith("free); finished work is kept: make room and rerun to resume")
    assert (data / "problem_pool" / "arith-0000.parquet").exists()  # finished work is intact
    assert not (data / "models" / "policy").exists()  # no half-written model: written atomically or not at all


def test_disk_problem_picks_the_disk_errors_only():
    assert disk_problem(["step x failed:\nValueError: bad"], "/tmp") is None
    line = disk_problem(["step rollouts failed:\nOSError: [Errno 30] Read-only file system: '/d/x'"], "")
    assert line == ("step rollouts failed: read-only file system writing into the data dir ; finished work is kept: "
                    "make room and rerun to resume")
