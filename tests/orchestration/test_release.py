"""A release round trip in a temp git repo with a temp DVC remote; verify catches a flipped byte, a missing file, an
added file and a forged manifest; a release names the runs that wrote its data dir and refuses files changed since."""

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from assets.common.partitions import shards
from orchestration.release import ReleaseError, dvc_executable, make_release, verify_release
from tests.support.pipeline import materialize_pipeline

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


def _registered_models_load_by_alias(root, alias):
    """The pipeline's registered PRMs score benchmark steps as `benchmark_scores` did; the policy is a transformers model."""
    import mlflow

    from prm_core.lineage.storage import read_parquet

    for name, registered in (("vanilla", "prm-foundry-prm-vanilla"), ("implicit_ce", "prm-foundry-implicit-ce")):
        bench = read_parquet(root / "data" / "reports" / "per_sample" / "processbench" / f"{name}.parquet").head(3)
        prm = mlflow.pyfunc.load_model(f"models:/{registered}@current")
        scores = prm.predict(bench.select(question="prompt", steps="steps").to_pandas())
        assert scores == [pytest.approx(s, abs=1e-5) for s in bench["step_scores"].to_list()]
    implicit = mlflow.MlflowClient().get_model_version_by_alias("prm-foundry-implicit-ce", "current")
    params = mlflow.get_run(implicit.run_id).data.params
    assert float(params["coef"]) == float(params["beta"]) > 0  # the coef used (β when config leaves 0), not config's 0
    policy = mlflow.pyfunc.load_model(f"models:/prm-foundry-policy@{alias}")
    assert {"transformers", "python_function"} <= set(policy.metadata.flavors) and policy.metadata.signature


def test_a_run_into_data_records_its_outputs_so_dvc_status_is_true(project):
    """What `prm run` does at its end (`commit_run_outputs`): dvc.lock for every stage whose outs exist; `dvc status`
    then reports them unchanged, and a changed output as changed. The release that follows ignores dvc.lock."""
    from orchestration.release import commit_run_outputs, stage_outs

    root, _ = project
    assert commit_run_outputs(root, root / "elsewhere") == []  # not dvc.yaml's data/: nothing to record
    done = commit_run_outputs(root, root / "data")
    assert done and set(done) == {s for s, outs in stage_outs(root).items() if all((root / o).exists() for o in outs)}
    status = subprocess.run([DVC, "status", *done], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status, status
    dry = subprocess.run([DVC, "repro", "--dry", *done], cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0 and "Running stage" not in dry.stdout, dry.stdout + dry.stderr


def test_release_round_trip_and_tampering(project, monkeypatch):
    root, instance = project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    keys, checks = _keys(instance)
    run_info = {"data/reports/run_info.json": {"seconds": 12.5}, "data/models/policy/run_info.json": {"run": "x"}}
    for path, info in run_info.items():  # volatile facts: recorded in the manifest, not listed as files
        (root / path).write_text(json.dumps(info))
    manifest, seconds = make_release("demo", root, root / "data", instance, keys, checks)
    assert manifest.git_tag == "release/demo" and len(manifest.files) > 10 and seconds > 0
    assert run_info.items() <= manifest.run_info.items() and "data/mc_costs/run_info.json" in manifest.run_info
    assert manifest.run_info["data/reports/summary.json"]["run.id"]  # the summary (timings included) is a run record
    assert not [f for f in manifest.files if f.path.endswith(("run_info.json", "reports/summary.json"))]
    assert "data/rollouts" in manifest.released and "data/problem_pool_quarantine" in manifest.released
    assert set(manifest.assets) == set(keys) and all(a["code_version"] for a in manifest.assets.values())
    assert list(manifest.assets["rollouts"]["partitions"]) == ["arith-0000"] and manifest.assets["policy_model"]["partitions"] == {}
    assert manifest.mlflow["model_version"] and manifest.dvc["remote"] == "local" and "local" in manifest.dvc["remotes"]
    _registered_models_load_by_alias(root, manifest.mlflow["alias"])
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
    # the summary's numbers are part of the release (named when edited); its timings are run records (a note)
    summary_path = root / "data" / "reports" / "summary.json"
    honest = summary_path.read_text()
    edited = json.loads(honest)
    key = next(k for k in sorted(edited) if isinstance(edited[k], float) and not k.endswith("seconds"))
    edited[key] += 0.25
    summary_path.write_text(json.dumps(edited))
    assert verify_release(root, "demo")[1] == [f"summary: {key} is {edited[key]!r}, released as {edited[key] - 0.25!r}"]
    timed = json.loads(honest)
    timed["run.seconds"] = 1.0
    summary_path.write_text(json.dumps(timed))
    _, problems, notes = verify_release(root, "demo")
    assert problems == [] and any("reports/summary.json" in n for n in notes)
    summary_path.write_text(honest)
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


def _honest(root):
    _, problems, _ = verify_release(root, "demo")
    assert problems == []


def test_verify_fails_on_added_files(project):
    """A file in a released folder that the manifest does not list fails verification, named; shard readers read the
    partition set, so a stray shard is not read either."""
    from assets.common.resources import StorageResource

    root, _ = project
    data = root / "data"
    extra_shard = data / "rollouts" / "arith-9999.parquet"
    shutil.copy(data / "rollouts" / "arith-0000.parquet", extra_shard)
    export = next(p for p in sorted((data / "prm_exports").iterdir()) if p.is_dir())
    extra_code = export / "evil.py"
    extra_code.write_text("import os\n")
    (data / "reports" / "per_sample" / "run_info.json").write_text("{}")  # run_info.json files are never "added"
    try:
        _, problems, _ = verify_release(root, "demo")
        assert sorted(problems) == sorted([f"added: {p.relative_to(root).as_posix()}" for p in (extra_shard, extra_code)])
        storage = StorageResource(base_dir=str(data))
        assert storage.shard_tables("rollouts", ["arith-0000", "arith-0001"]) == [storage.table("rollouts", "arith-0000")]
    finally:
        for p in (extra_shard, extra_code, data / "reports" / "per_sample" / "run_info.json"):
            p.unlink()
    _honest(root)


def _forge(root, target: Path) -> tuple[str, bytes]:
    """Change a released data file and its md5 (and size) in a copy of the manifest written to `target`."""
    from prm_core.lineage.storage import md5_file

    manifest = json.loads((root / "releases" / "demo" / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"].startswith("data/step_truth/") and f["path"].endswith(".parquet"))
    path = root / entry["path"]
    original = path.read_bytes()
    path.write_bytes(original + b"forged")
    entry.update(md5=md5_file(path), size=path.stat().st_size)
    target.write_text(json.dumps(manifest, indent=2))
    return entry["path"], original


def test_verify_fails_on_a_forged_manifest(project, tmp_path):
    """The working-tree manifest and one passed by path are checked against the manifest of the tagged commit."""
    root, _ = project
    manifest = root / "releases" / "demo" / "manifest.json"
    honest = manifest.read_text()
    forged, original = _forge(root, manifest)
    try:
        _, problems, _ = verify_release(root, "demo")
        assert problems[0] == f"manifest differs from the one tagged release/demo: files ({forged})"
        assert problems[1].startswith(f"changed: {forged}") and len(problems) == 2
        manifest.write_text(honest)
        by_path = tmp_path / "manifest.json"
        _forge(root, by_path)
        _, problems, _ = verify_release(root, str(by_path))
        assert problems[0].startswith("manifest differs from the one tagged release/demo") and forged in problems[0]
        assert problems[1].startswith(f"changed: {forged}")
        renamed = json.loads(by_path.read_text()) | {"name": "no-such-release"}  # a name without a tag
        by_path.write_text(json.dumps(renamed))
        _, problems, _ = verify_release(root, str(by_path))
        assert problems == [f"no tag release/no-such-release with releases/no-such-release/manifest.json: {by_path} "
                            "cannot be checked against a release"]
    finally:
        manifest.write_text(honest)
        (root / forged).write_bytes(original)
    _honest(root)


def test_release_lineage_is_of_its_own_data_dir(project, tmp_path):
    """With later materializations of another data dir in the same instance, a release names the runs that wrote its
    own files; a file changed since its materialization, or written by none, makes the release refuse, named."""
    from assets.common.resources import DomainResource, GeneratorResource, StorageResource, TrackingResource
    from orchestration.cli import RANGE_END, RANGE_START
    from orchestration.lineage import asset_lineage
    from tests.support.pipeline import ALL_ASSETS, CONFIG

    root, instance = project
    keys, checks = _keys(instance)
    data, other = root / "data", tmp_path / "other"
    before, *_ = asset_lineage(instance, keys, data.resolve())
    names = ["problem_pool", "policy_model", "rollouts"]  # data dir B, materialized after A in the same instance
    b_run = dg.materialize(ALL_ASSETS, instance=instance, selection=names, tags={RANGE_START: "arith-0000", RANGE_END: "arith-0000"},
                           resources={"storage": StorageResource(base_dir=str(other)), "domain": DomainResource(),
                                      "generator": GeneratorResource(engine="transformers"), "tracking": TrackingResource(root=str(tmp_path))},
                           run_config={"ops": {k: v for k, v in CONFIG["ops"].items() if k in names}}).run_id
    for key in names:
        latest = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert latest.run_id == b_run and latest.asset_materialization.metadata["lineage/data_dir"].value == str(other.resolve())
    after, *_ = asset_lineage(instance, keys, data.resolve())
    assert after == before and b_run not in {a["run_id"] for a in after.values()}  # A's runs, not B's later ones
    assert b_run not in after["rollouts"]["partitions"].values()
    truth = data / "step_truth" / "arith-0000.parquet"
    original = truth.read_bytes()
    truth.write_bytes(original + b"x")
    stray = data / "rollouts" / "arith-0000.parquet.bak"
    stray.write_bytes(b"not written by any asset")
    try:
        with pytest.raises(ReleaseError, match="changed since their materialization: data/step_truth/arith-0000.parquet") as e:
            make_release("changed", root, data, instance, keys, checks)
        assert "written by no recorded materialization" in str(e.value) and "data/rollouts/arith-0000.parquet.bak" in str(e.value)
    finally:
        truth.write_bytes(original)
        stray.unlink()
    assert "release/changed" not in subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True).stdout


def test_model_pointers_are_relative_to_the_data_dir(project, tmp_path):
    """A copied data dir reads its own models; a model outside the data dir (a pretrained one) keeps its absolute path."""
    from assets.common.resources import StorageResource

    root, _ = project
    assert json.loads((root / "data" / "models" / "policy.json").read_text()) == {"path": "models/policy"}
    copy = tmp_path / "copy"
    shutil.copytree(root / "data", copy, ignore=shutil.ignore_patterns("*.parquet", "prm_exports", "exports"))
    storage = StorageResource(base_dir=str(copy))
    assert storage.model("policy") == storage.root / "models" / "policy" and (storage.model("policy") / "config.json").exists()
    pretrained = tmp_path / "pretrained"
    storage.set_model("backbone", pretrained)
    assert json.loads((copy / "models" / "backbone.json").read_text()) == {"path": str(pretrained.resolve())}
    assert str(storage.model("backbone")) == str(pretrained.resolve())


def test_release_refuses_a_dirty_tree(project):
    root, instance = project
    keys, checks = _keys(instance)
    (root / "prm_core" / "scratch.py").write_text("x = 1\n")
    try:
        with pytest.raises(ReleaseError, match="not clean"):
            make_release("dirty", root, root / "data", instance, keys, checks)
    finally:
        (root / "prm_core" / "scratch.py").unlink()


def test_a_release_names_a_stage_that_has_not_run_in_plain_words(project):
    root, instance = project
    keys, checks = _keys(instance)
    never = dg.AssetCheckKey(dg.AssetKey("prm_model"), "not_yet_evaluated")  # as a run that stopped before prm_model
    with pytest.raises(ReleaseError) as e:
        make_release("partial", root, root / "data", instance, keys, [*checks, never], allow_dirty=True)
    message = str(e.value)
    assert "the prm_model stage has not run yet (its check not_yet_evaluated has no result)" in message
    assert "prm run --data-dir" in message and "PLANNED" not in message and "never run" not in message


def test_manifest_json_round_trips(project):
    from prm_core.lineage.manifest import Manifest

    root, _ = project
    path = root / "releases" / "demo" / "manifest.json"
    if path.exists():
        m = Manifest.from_json(path.read_text())
        assert json.loads(m.to_json()) == json.loads(path.read_text())
        older = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("released", "run_info")}
        assert Manifest.from_json(json.dumps(older)).run_info == {}  # manifests made before these fields still load


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


@pytest.mark.parametrize("text", ["not json {", "[1, 2]", '{"name": "x"}', '{"files": [{"nope": 1}]}'])
def test_verify_of_a_malformed_manifest_is_one_line(tmp_path, text, monkeypatch):
    import contextlib
    import io

    from orchestration.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "m.json").write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["release", "verify", str(tmp_path / "m.json"), "--data-dir", str(tmp_path / "data")])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and str(tmp_path / "m.json") in lines[0] and "Traceback" not in lines[0]
