"""`release_job`: the same release as `prm release NAME`, launchable from the Dagster UI's launchpad."""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field


class ReleaseConfig(dg.Config):
    name: str = Field(description="release name: the tag is release/<name>")
    remote: str = Field(default="", description="DVC remote (default: the repo's default remote)")
    allow_dirty: bool = False
    project_dir: str = Field(default="", description="the checkout to release (default: this project)")


@dg.op(description="Preflight, DVC commit + push, MLflow run and model version, manifest, git tag.")
def make_release_op(context: dg.OpExecutionContext, config: ReleaseConfig) -> dg.Output[str]:
    from assets.common.lock import run_lock
    from assets.common.paths import project_root
    from orchestration.jobs import pipeline_keys
    from orchestration.release import make_release

    root = Path(config.project_dir) if config.project_dir else project_root()
    data_dir = Path(os.environ.get("PRM_DATA_DIR", str(root / "data")))
    keys, checks = pipeline_keys()
    with run_lock(data_dir, context.run):  # as `prm release` does: nothing writes the data dir while it is snapshot
        manifest, seconds = make_release(config.name, root, data_dir, context.instance, keys, checks,
                                         remote=config.remote or None, allow_dirty=config.allow_dirty)
    path = root / "releases" / manifest.name / "manifest.json"
    return dg.Output(str(path), metadata={
        "manifest": dg.MetadataValue.path(str(path)), "tag": manifest.git_tag, "files": len(manifest.files),
        "git_sha": manifest.git_sha, "mlflow_run": manifest.mlflow.get("run_id", ""),
        "model_version": str(manifest.mlflow.get("model_version", "")), "seconds": round(seconds, 2)})


@dg.job(description="Make a lineage-audited release of the current data (config: name).")
def release_job():
    make_release_op()
