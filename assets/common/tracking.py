"""MLflow tracking shared by PRM training and releases: a sqlite store under the project by default.

`MLFLOW_TRACKING_URI` overrides it (a team server, say). Open the local one with

    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import os
from pathlib import Path


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path(root) / 'mlflow.db'}")


def use_experiment(root: Path, experiment: str):
    """The mlflow module, pointed at the project's store and `experiment` (created with artifacts under the project)."""
    import logging

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(root))
    if mlflow.get_experiment_by_name(experiment) is None:  # artifacts beside the default store; a server decides its own
        local = "MLFLOW_TRACKING_URI" not in os.environ
        mlflow.create_experiment(experiment, artifact_location=(Path(root) / "mlartifacts").as_uri() if local else None)
    mlflow.set_experiment(experiment)
    return mlflow


def register(name: str, source: str, run_id: str, aliases: list[str], description: str = "") -> str:
    """A new version of registered model `name` from `source`, with `aliases` moved onto it; returns the version."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)
    version = client.create_model_version(name, source=source, run_id=run_id).version
    for alias in aliases:
        client.set_registered_model_alias(name, alias.replace(".", "-"), version)
    return str(version)


def log_model(mlflow, folder, name: str, dagster_run_id: str, description: str) -> dict:
    """Log `folder` as the active run's `model` artifacts and register it as a new version of `name`, with the aliases
    `current` and `dagster-<run>`; returns what the model's own record keeps of it."""
    run = mlflow.active_run()
    mlflow.log_artifacts(str(folder), artifact_path="model")
    version = register(name, f"{run.info.artifact_uri}/model", run.info.run_id,
                       ["current", f"dagster-{dagster_run_id[:8]}"], description)
    return {"mlflow_run_id": run.info.run_id, "mlflow_model": name, "mlflow_version": version,
            "mlflow_uri": mlflow.get_tracking_uri()}
