"""PRM training as a Ray job: `prm_model` with launcher `ray` on a local Ray head of its own (2 CPUs, job server)
trains the PRM the in-process path trains (same seed, same scores), its metrics reach the materialization, and a job
that fails fails the asset with the job's error."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from assets.common.resources import StorageResource, TrackingResource
from assets.prm_model import prm_model
from tests.support.prm import BAD, GOOD, corpus_file

pytest.importorskip("ray")
pytest.importorskip("dagster_ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a throwaway local cluster

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

TRAIN = {"steps": 5, "batch_size": 4, "seed": 3}
ON_RAY = {"launcher": "ray", "ray_gpus_per_process": 0, "ray_cpus_per_process": 1}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    """Our head's process group, then any process of ours still naming its temp dir (never `ray stop`: it stops
    every Ray on the machine)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)  # `ray start --block` itself lingers after its children stop
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head of 2 CPUs with the job server, on ports and a temp dir of its own; its GCS address."""
    temp_dir = tempfile.mkdtemp(prefix="rayprm")  # short: Ray's unix socket paths must stay under 108 characters
    gcs, dashboard, agent, client = _free_ports(4)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0",
         "--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--port", str(gcs), "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
         "--temp-dir", temp_dir, "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/version", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start (exit {proc.poll()})") from None
                time.sleep(0.5)
        yield f"127.0.0.1:{gcs}"
    finally:
        _stop(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _materialize(data: Path, backbone: Path, tmp_path: Path, config: dict):
    """The run's result and its log messages (the job's own lines among them)."""
    storage = StorageResource(base_dir=str(data))
    corpus_file(data / "filtered_corpus" / "vanilla.parquet")
    storage.set_model("prm_backbone", backbone)
    with dg.instance_for_test() as instance:
        result = dg.materialize([prm_model], instance=instance, partition_key="vanilla", raise_on_error=False,
                                resources={"storage": storage, "tracking": TrackingResource(root=str(tmp_path))},
                                run_config={"ops": {"prm_model": {"config": config}}})
        return result, [e.user_message for e in instance.all_logs(result.run_id)]


def _scores(model_dir: Path) -> list[list[float]]:
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import load_prm, score_steps

    tok = AutoTokenizer.from_pretrained(model_dir)
    return score_steps(load_prm(model_dir), tok, [GOOD.prompt, BAD.prompt], [GOOD.steps, BAD.steps], "\n")


def test_prm_model_trains_as_a_ray_job(ray_head, tiny_policy, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    monkeypatch.chdir(tmp_path)  # a relative data dir (the default `data`): the job, in a dir of its own, still finds it
    local, _ = _materialize(Path("local"), tiny_policy, tmp_path, TRAIN)
    remote, logs = _materialize(Path("ray"), tiny_policy, tmp_path, {**TRAIN, **ON_RAY})
    assert local.success and remote.success
    (event,) = remote.get_asset_materialization_events()
    info = event.materialization.metadata["training"].value
    assert info["launcher"] == "ray" and info["world_size"] == 1  # the job's metrics message
    assert info["train_seconds"] > 0 and info["ray_job_id"].startswith("pipes-")
    assert any("training a PRM on 8 sequences" in m for m in logs)  # the job's log, streamed into the run
    expected, got = _scores(tmp_path / "local" / "models" / "prm" / "vanilla"), _scores(tmp_path / "ray" / "models" / "prm" / "vanilla")
    assert [len(s) for s in got] == [len(GOOD.steps), len(BAD.steps)]
    assert sum(got, []) == pytest.approx(sum(expected, []), abs=1e-5)  # same seed, same PRM
    assert not list((tmp_path / "ray" / "models" / "prm").glob(".train-*"))  # the job's work folder is gone


def test_a_failing_ray_job_fails_the_asset_with_its_error(ray_head, tiny_policy, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_policy, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")  # the job fails loading the backbone
    result, _ = _materialize(tmp_path / "data", broken, tmp_path, {**TRAIN, **ON_RAY})
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.event_specific_data.error.to_string()
    assert "Ray job" in error and "failed" in error and "safetensors" in error.lower(), error
