"""A release round trip in a temp git repo with a temp DVC remote; verify catches a flipped byte and a missing file."""

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from assets.common.partitions import shards
from orchestration.release import ReleaseError, dvc_executable, make_release, verify_release
from tests.orchestration.test_mc_pipeline import materialize_pipeline

REPO = Path(__file__).resolve().parents[2]
DVC = dvc_executable(REPO)


def _sh(cwd, *cmd):
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with its own git repo, DVC remote, Dagster instance and a tiny materialized run."""
    root = tmp_path_factory.mktemp("proj")
    for d in ("prm_core", "assets", "orchestration"):
        shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / f, root / f)
    _sh(root, "git", "init", "-q")
    _sh(root, DVC, "init", "-q")
    _sh(root, DVC, "config", "core.analytics", "false")
    _sh(root, DVC, "remote", "add", "-d", "local", str(tmp_path_factory.mktemp("remote")))
    _sh(root, "git", "add", "-A")
    _sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    home = root / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions(shards.name, ["arith-0000"])
    materialize_pipeline(instance, root / "data", ["arith-0000"])
    return root, instance


def _keys(instance):
    from orchestration.jobs import pipeline_keys

    return pipeline_keys()


def test_release_round_trip_and_tampering(project, monkeypatch):
    root, instance = project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    keys, checks = _keys(instance)
    manifest, seconds = make_release("demo", root, root / "data", instance, keys, checks)
    assert manifest.git_tag == "release/demo" and len(manifest.files) > 10 and seconds > 0
    assert set(manifest.assets) == set(keys) and all(a["code_version"] for a in manifest.assets.values())
    assert list(manifest.assets["rollouts"]["partitions"]) == ["arith-0000"] and manifest.assets["policy_model"]["partitions"] == {}
    assert manifest.mlflow["model_version"] and manifest.dvc["remote"] == "local" and "local" in manifest.dvc["remotes"]
    tags = subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True).stdout.split()
    assert "release/demo" in tags
    # manifest md5s equal DVC's: dvc.lock's per-directory listings are made of the same file hashes
    lock = (root / "dvc.lock").read_text()
    assert "data/rollouts" in lock
    _, problems, notes = verify_release(root, "demo")
    assert problems == [] and notes == []
    with pytest.raises(ReleaseError, match="exists already"):
        make_release("demo", root, root / "data", instance, keys, checks)

    parquet = next(f for f in manifest.files if f.path.endswith(".parquet") and "rollouts" in f.path)
    path = root / parquet.path
    original = path.read_bytes()
    path.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    _, problems, _ = verify_release(root, "demo")
    assert problems and problems[0].startswith(f"changed: {parquet.path}")
    path.unlink()
    _, problems, _ = verify_release(root, str(root / "releases" / "demo" / "manifest.json"))
    assert problems == [f"missing: {parquet.path}"]
    path.write_bytes(original)
    assert verify_release(root, "demo")[1] == []
    # the data comes back from the DVC remote after the cache is gone (a clean clone: `dvc pull`)
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(root / "data" / "rollouts")
    _sh(root, DVC, "pull", "-q")
    assert verify_release(root, "demo")[1] == []
    # a clean clone has no local MLflow store: that link is noted, not failed
    (root / "mlflow.db").rename(root / "mlflow.db.bak")
    _, problems, notes = verify_release(root, "demo")
    assert problems == [] and "not on this machine" in notes[0]
    (root / "mlflow.db.bak").rename(root / "mlflow.db")


def test_release_refuses_a_dirty_tree(project):
    root, instance = project
    keys, checks = _keys(instance)
    (root / "prm_core" / "scratch.py").write_text("x = 1\n")
    try:
        with pytest.raises(ReleaseError, match="not clean"):
            make_release("dirty", root, root / "data", instance, keys, checks)
    finally:
        (root / "prm_core" / "scratch.py").unlink()


def test_manifest_json_round_trips(project):
    from prm_core.lineage.manifest import Manifest

    root, _ = project
    path = root / "releases" / "demo" / "manifest.json"
    if path.exists():
        m = Manifest.from_json(path.read_text())
        assert json.loads(m.to_json()) == json.loads(path.read_text())


def test_release_job_from_dagster(project, monkeypatch):
    from orchestration.release_job import release_job

    root, instance = project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("PRM_DATA_DIR", str(root / "data"))
    result = release_job.execute_in_process(
        run_config={"ops": {"make_release_op": {"config": {"name": "from-ui", "project_dir": str(root)}}}},
        instance=instance)
    assert result.success and result.output_for_node("make_release_op").endswith("releases/from-ui/manifest.json")
    assert verify_release(root, "from-ui")[1] == []
