"""The `prm` command as a user runs it: a tiny end-to-end run, then `prm summary` (table and --json)."""

import json
import os
import subprocess
import sys
from pathlib import Path


def _prm(args, env):
    cwd = Path(env["PRM_DATA_DIR"]).parent  # MLflow's default artifact root is relative to it
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def test_prm_run_then_summary(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "data"),
           "PRM_ENGINE": "transformers", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    run = _prm(["run", "--shards", "1", "--shard-size", "4", "--samples", "2", "--policy-steps", "20",
                "--eval-problems", "4", "--bench-per-class", "3", "--bon-problems", "4", "--backbone-steps", "5",
                "--prm-steps", "10", "--quiet", "--json"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["rollouts.count"] == 8 and summary["run.seconds"] > 0
    assert (Path(env["DAGSTER_HOME"]) / "dagster.yaml").exists()
    shown = _prm(["summary"], env)
    assert shown.returncode == 0 and "rollouts.tokens_per_s" in shown.stdout
    as_json = _prm(["summary", "--json"], env)
    assert json.loads(as_json.stdout) == summary


def test_summary_before_any_run_says_what_to_do(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "none")}
    res = _prm(["summary"], env)
    assert res.returncode == 1 and "prm run" in res.stderr
