"""The `prm` command as a user runs it: a tiny end-to-end run, then `prm summary` (table and --json)."""

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import SHARED_DATA
from tests.support.text_path import PROBLEMS


def _prm(args, env):
    cwd = Path(env["PRM_DATA_DIR"]).parent  # MLflow's default artifact root is relative to it
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def test_prm_run_then_summary(tmp_path):
    """Real job runs, with the run's arguments as tags, in the data dir's own Dagster instance."""
    import dagster as dg

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"PRM_DATA_DIR": str(tmp_path / "data"), "PRM_ENGINE": "transformers",
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    run = _prm(["run", "--shards", "1", "--shard-size", "4", "--samples", "2", "--policy-steps", "20",
                "--eval-problems", "4", "--bench-per-class", "3", "--bon-problems", "4", "--backbone-steps", "5",
                "--prm-steps", "10", "--quiet", "--json"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["rollouts.count"] == 8 and summary["run.seconds"] > 0
    assert summary["pool.exact_labels"] is True and summary["benchmark.prms"] >= 3  # what `prm summary` checks
    # the terminal names each run, step and partition as it goes, with what each step cost, and no MLflow chatter
    err = run.stderr
    assert re.search(r"prm \[1/3 default_pipeline\] run [0-9a-f-]{36}: shard arith-0000\n", err), err[-3000:]
    assert "prm [1/3 default_pipeline] policy_model: started\n" in err
    assert re.search(r"prm \[1/3 default_pipeline\] rollouts: done in \d+\.\d s \(\d[\d,]* tokens, 8 rollouts\)", err), err[-3000:]
    assert re.search(r"prm \[2/3 implicit_pipeline\] implicit_prm: done in \d+\.\d s \(2 partitions\)", err), err[-3000:]
    assert re.search(r"prm \[3/3 prm_pipeline\] prm_model: done in \d+\.\d s \(\d partitions\)", err), err[-3000:]
    assert "prm [3/3 prm_pipeline] benchmark_scores: started\n" in err and ": partitions vanilla.." in err
    assert "CloudPickle" not in err and "Downloading artifacts" not in err and "already exists" not in err
    home = tmp_path / "data" / "dagster_home"  # DAGSTER_HOME follows the data dir
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {r.job_name: r for r in instance.get_runs()}
        assert sorted(runs) == ["default_pipeline", "implicit_pipeline", "prm_pipeline"]
        for job in runs:  # what a job's Runs tab in the UI lists: runs of the job in this code location
            shown = dg.RunsFilter(job_name=job, tags={".dagster/repository": "__repository__@orchestration.definitions"})
            assert len(instance.get_runs(filters=shown)) == 1
        for r in runs.values():
            assert r.status == dg.DagsterRunStatus.SUCCESS and r.tags["dagster/code_location"] == "orchestration.definitions"
            assert r.tags["prm/data_dir"] == str(tmp_path / "data") and r.tags["prm/shard_size"] == "4"
            assert r.tags["prm/seed"] == "0" and r.tags["prm/engine"] == "transformers"
            assert datetime.fromisoformat(r.tags["prm/started"]).tzinfo is not None
            assert r.run_config["resources"]["storage"]["config"]["base_dir"] == str(tmp_path / "data")
        assert instance.get_dynamic_partitions("shards") == ["arith-0000"]
    stages = {k.removeprefix("run.stage_seconds.") for k in summary if k.startswith("run.stage_seconds.")}
    assert {"policy_model", "rollouts", "mc_estimates", "implicit_prm", "prm_model", "benchmark_scores", "other"} <= stages
    from prm_core.runtime.device import resolve_precision

    used = resolve_precision("auto", "cpu")  # what every trainer ran at on this CPU (bf16 only with native support)
    assert summary["policy.precision"] == summary["prm_backbone.precision"] == summary["implicit.ce.precision"] == used
    assert summary["prm.vanilla.precision"] == "fp32"  # a frozen backbone: the head on fp32 head inputs, as scored
    shown = _prm(["summary"], env)
    assert shown.returncode == 0 and "rollouts.tokens_per_s" in shown.stdout and "partial" not in shown.stderr
    assert "where the last run's time went" in shown.stdout and "policy_model" in shown.stdout
    as_json = _prm(["summary", "--json"], env)
    assert json.loads(as_json.stdout) == summary


def test_a_queued_run_coordinator_runs_prm_through_the_daemon(tmp_path):
    """The same `prm run` with the instance's queue: the run waits until `dagster-daemon` starts it."""
    import signal
    import time

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nrun_coordinator:\n  module: "
                                       "dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PRM_DATA_DIR": str(tmp_path / "data"), "PRM_ENGINE": "transformers"}
    import dagster as dg

    dg.DagsterInstance.from_config(str(home)).dispose()  # its storage, before two processes race to create it
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-m", "orchestration.definitions"],
                              env=env, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        start = time.time()
        res = _prm(["run", "--shards", "1", "--shard-size", "2", "--quiet", "--assets", "problem_pool"], env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "is queued" in res.stderr and time.time() - start < 300
        assert (tmp_path / "data" / "problem_pool" / "arith-0000.parquet").exists()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def test_summary_before_any_run_says_what_to_do(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "none")}
    res = _prm(["summary"], env)
    assert res.returncode == 1 and "prm run" in res.stderr
    assert not (tmp_path / "home").exists()  # a command that only reads creates no instance


def test_summary_of_a_partial_run_names_the_missing_stages(tmp_path):
    from prm_core.lineage.summary import update_summary

    data = tmp_path / "data"
    update_summary(data, {"rollouts.accuracy": 0.7, "mc.vanilla.seconds": 3.0})  # a run that stopped after MC
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    res = _prm(["summary", "--json", "--data-dir", str(data)], {**env, "PRM_DATA_DIR": str(data)})
    assert res.returncode == 0 and json.loads(res.stdout)["rollouts.accuracy"] == 0.7
    assert "partial: no results yet from label_audit, prm_model, implicit_prm, actprm_model, benchmark_scores" in res.stderr
    assert not (data / "dagster_home").exists()


BAD_FLAGS = [
    (["--shards", "0"], "--shards"), (["--shard-size", "-5"], "--shard-size"), (["--samples", "0"], "--samples"),
    (["--policy-steps", "0"], "--policy-steps"), (["--shards", "two"], "--shards"), (["--seed", "-1"], "--seed"),
    (["--prm-steps", "0"], "--prm-steps"), (["--bench-per-class", "0"], "--bench-per-class"),
    (["--source", "/no/such/folder"], "--source"), (["--source", __file__], "--source"),
    (["--assets", ""], "--assets"), (["--assets", " , "], "--assets"), (["--assets", "rollouts,nope"], "--assets"),
    (["--implicit-losses", "ce,xyz"], "--implicit-losses"), (["--domain", "gsm8k"], "--domain"),
    (["--policy", "/no/such/model"], "--policy"), (["--prm-backbone", str(Path(__file__).parent)], "--prm-backbone"),
    (["--processbench", "/no/such/folder"], "--processbench"), (["--data-dir", __file__], "--data-dir"),
    (["--log-level", "loud"], "--log-level"), (["--shards", "1000000"], "--shards"),
    (["--shard-size", "100000000"], "--shard-size"), (["--seed", "2147483647"], "--seed"),
]


@pytest.mark.parametrize("flags,flag", BAD_FLAGS, ids=[" ".join(f) or "empty" for f, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_before_any_work(flags, flag, tmp_path, capsys, monkeypatch):
    """Each bad value: exit code 2, one error line naming the flag, no traceback, nothing created."""
    from orchestration.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRM_DATA_DIR", str(tmp_path / "data"))
    try:
        code = main(["run", *flags])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and flag in errors[0], err
    assert "Traceback" not in err and not (tmp_path / "home").exists() and not (tmp_path / "data").exists()


COMPARE_BAD_FLAGS = [(["--budgets", "0,40"], "--budgets"), (["--budgets", "forty"], "--budgets"),
                     (["--max-shards", "0"], "--max-shards"), (["--assets", "rollouts"], "--assets"),
                     (["--methods", "vanilla,nope"], "--methods"),
                     (["--source", "SRC"], "arith testbed")]


@pytest.mark.parametrize("flags,flag", COMPARE_BAD_FLAGS, ids=[" ".join(f) for f, _ in COMPARE_BAD_FLAGS])
def test_prm_compare_refuses_a_bad_flag_in_one_line_before_any_work(flags, flag, tmp_path, capsys, monkeypatch):
    from orchestration.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRM_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jsonl").write_text('{"question": "1 + 1?", "answer": "2"}\n')  # a valid folder, not arith
    try:
        code = main(["compare", *[str(tmp_path / "src") if f == "SRC" else f for f in flags]])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and flag in errors[0], err
    assert not (tmp_path / "home").exists() and not (tmp_path / "data").exists()


def test_same_stem_problem_files_are_one_line(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("x.jsonl", "x.parquet"):
        (tmp_path / "src" / name).write_text("")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "data")}
    res = _prm(["run", "--source", str(tmp_path / "src")], env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "x.jsonl" in res.stderr and "x.parquet" in res.stderr


def test_run_left_started_by_a_killed_process_is_marked_failed(tmp_path):
    """kill -9 of `prm`, the code server and the run worker leaves the run STARTED; the next `prm run` marks it failed."""
    import signal
    import time

    import dagster as dg

    from orchestration.launch import worker_pid

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "data"),
           "PRM_ENGINE": "transformers"}
    args = ["run", "--shards", "1", "--shard-size", "2", "--policy-steps", "100000", "--quiet",
            "--assets", "problem_pool,policy_model"]
    (tmp_path / "home").mkdir()
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:  # its storage exists before the run's
        proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", *args], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while not instance.get_runs(filters=started) and time.time() < deadline:
                time.sleep(1)
            (run,) = instance.get_runs(filters=started)
            pid = worker_pid(instance, run.run_id)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # the whole tree: the code server that started the worker would otherwise report its death itself
        server = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(server, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    res = _prm(["run", "--shards", "1", "--shard-size", "2", "--quiet", "--assets", "problem_pool"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"run {run.run_id} was left STARTED" in res.stderr
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not instance.get_runs(filters=started)


def _session(pid) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def test_ctrl_c_cancels_the_run_exits_130_in_one_line_and_leaves_no_process(tmp_path):
    """SIGINT to `prm`'s process group, as a terminal's Ctrl-C sends it: the run is CANCELED (as the UI's Terminate
    does it), `prm` exits 130 with one line, no process of the run is left, and the data dir is free for a rerun."""
    import signal
    import time

    import dagster as dg

    from orchestration.launch import worker_pid

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PRM_DATA_DIR": str(tmp_path / "data"),
           "PRM_ENGINE": "transformers"}
    args = ["run", "--shards", "1", "--shard-size", "2", "--policy-steps", "100000", "--assets", "problem_pool,policy_model"]
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", *args], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a shell's job
        try:
            deadline = time.time() + 180
            while time.time() < deadline and not any(
                    e.dagster_event.step_key == "policy_model" for r in instance.get_runs()
                    for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)):
                time.sleep(1)
            (run,) = instance.get_runs()
            pid = worker_pid(instance, run.run_id)
            session = _session(pid)  # the launch's: its code server, the worker and what the worker started
            assert session is not None and session != _session(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)
            err = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 130, err[-3000:]
        assert err.rstrip().splitlines()[-1] == (f"prm: interrupted; finished work is kept; rerun to resume (run "
                                                 f"{run.run_id} of default_pipeline canceled; see `prm ui`)")
        assert "Traceback" not in err and "Stack Trace" not in err, err[-3000:]
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _session(p.name) == session]
    res = _prm(["run", "--shards", "1", "--shard-size", "2", "--quiet", "--assets", "problem_pool"], env)
    assert res.returncode == 0, res.stderr[-3000:]


def test_a_new_file_that_sorts_first_runs_and_relative_paths_resolve_from_the_callers_folder(tmp_path):
    """Files b, c, then a (first by name, last in Dagster's partition order): the second run covers all three; a
    relative --source is the caller's (the run worker starts in the project root)."""
    import dagster as dg

    row = '{"question": "Tom has 3 pens. He finds 2 more. How many now?", "answer": "5"}\n'
    (tmp_path / "src").mkdir()
    for name in ("b", "c"):
        (tmp_path / "src" / f"{name}.jsonl").write_text(row)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"PRM_DATA_DIR": str(tmp_path / "data"), "PRM_ENGINE": "transformers"})
    args = ["run", "--source", "src", "--assets", "problem_pool", "--quiet"]
    assert (first := _prm(args, env)).returncode == 0, first.stderr[-2000:]  # cwd: tmp_path (see _prm)
    (tmp_path / "src" / "a.jsonl").write_text(row)
    (tmp_path / "src" / "more.jsonl.gz").write_bytes(b"")
    assert (second := _prm(args, env)).returncode == 0, second.stderr[-2000:]
    assert f"prm: skipped {tmp_path / 'src' / 'more.jsonl.gz'}: not a .jsonl/.json/.parquet file" in second.stderr
    assert sorted(p.name for p in (tmp_path / "data" / "problem_pool").glob("*.parquet")) == ["a.parquet", "b.parquet", "c.parquet"]
    with dg.DagsterInstance.from_config(str(tmp_path / "data" / "dagster_home")) as instance:
        assert instance.get_dynamic_partitions("shards") == ["b", "c", "a"]


def test_partition_ranges_follow_the_instances_order():
    from orchestration.launch import partition_ranges

    assert partition_ranges(["a", "b", "c"], ["b", "c", "a"]) == [("b", "a")]
    assert partition_ranges(["a", "c"], ["a", "x", "c"]) == [("a", "a"), ("c", "c")]  # never a range over x
    assert partition_ranges(["b"], ["a", "b", "c"]) == [("b", "b")]


def test_local_path_flags_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    import argparse

    from orchestration.cli_checks import absolute_paths

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(source="src", policy="~/p", prm_backbone=None, processbench="s3://b/pb", prmbench="",
                              data_dir="d")
    out = absolute_paths(args)
    assert out.source == str(tmp_path / "src") and out.policy == os.path.expanduser("~/p")
    assert out.processbench == "s3://b/pb" and out.prmbench == "" and out.data_dir == str(tmp_path / "d")
    assert absolute_paths(argparse.Namespace(source="arith")).source == "arith" and args.source == "src"


@pytest.mark.skipif(not (SHARED_DATA / "processbench").is_dir(), reason="shared data not present")
def test_prm_run_on_gsm8k_format_files_with_a_policy_runs_all_three_stages(tmp_path, text_policy):
    """The real-data path end to end, as documented (docs/running.md): arith problems as GSM8K JSONL, `--domain
    gsm8k`, a policy that solves some of them; the shard, implicit and PRM stages on text, math-verify grading, the
    real ProcessBench and PRMBench subsets."""
    from prm_core.domains.arith_text import write_gsm8k_jsonl

    write_gsm8k_jsonl(tmp_path / "problems" / "arith-text.jsonl", 12, seed=5, config=PROBLEMS)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"PRM_DATA_DIR": str(tmp_path / "data"), "PRM_ENGINE": "transformers",
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    run = _prm(["run", "--domain", "gsm8k", "--source", str(tmp_path / "problems"), "--policy", str(text_policy),
                "--samples", "4", "--backbone-steps", "5", "--prm-steps", "10", "--bench-per-class", "3",
                "--bon-problems", "4", "--implicit-losses", "ce", "--processbench", str(SHARED_DATA / "processbench"),
                "--prmbench", str(SHARED_DATA / "prmbench"), "--quiet", "--json"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["pool.problems"] == 12 and summary["pool.exact_labels"] is False and summary["rollouts.count"] == 48
    assert 0 < summary["rollouts.accuracy"] < 1  # math-verify's grades of a policy that solves some, not all
    assert summary["labels.vanilla.labelled"] == 48 and summary["labels.scan.labelled"] > 0  # SCAN keeps some questions
    tokens = ("rollouts.tokens", "mc.vanilla.tokens", "mc.scan.tokens", "actprm.critique.tokens")
    assert all(summary[k] > 0 for k in tokens), {k: summary[k] for k in tokens}
    stages = {k.removeprefix("run.stage_seconds.") for k in summary if k.startswith("run.stage_seconds.")}
    assert {"rollouts", "self_confidence", "mc_estimates", "denoised_labels", "label_exports", "actprm_model",
            "implicit_prm", "filtered_corpus", "prm_model", "benchmark_scores", "prm_exports"} <= stages
    f1 = {k.rsplit(".", 1)[1]: v for k, v in summary.items() if k.startswith("processbench.real.avg_f1.")}
    assert {"vanilla", "scan", "implicit_ce"} <= set(f1) and summary["processbench.real.rows"] > 0
    scores = [*f1.values(), summary["actprm.critique.f1"], *(v for k, v in summary.items() if k.startswith("prmbench.prmscore."))]
    assert all(0 <= v <= 1 for v in scores), scores  # computed: a number in range, never NaN
    assert summary["actprm.critique.calls"] > 0 and summary["prmbench.rows"] > 0
    labels = pl.read_parquet(tmp_path / "data" / "denoised_labels" / "arith-text.parquet")
    values = labels["labels"].explode()
    assert values.len() > 0 and values.min() >= 0 and values.max() <= 1 and not values.is_nan().any()
    assert set(labels["method"]) >= {"vanilla", "scan"}
    mc = pl.read_parquet(tmp_path / "data" / "mc_estimates" / "arith-text.parquet")["mc_value"]
    assert mc.min() >= 0 and mc.max() <= 1 and 0 < mc.mean() < 1  # MC values that say something
