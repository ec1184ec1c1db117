"""MLflow tracking shared by PRM training and releases: a sqlite store under the project by default.

`MLFLOW_TRACKING_URI` overrides it (a team server, say). A sqlite store keeps its artifacts beside it, in
`mlartifacts/<experiment>` next to the `.db` file, so that a copied checkout writes into its own copy. Open the
local one with

    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"  # else MLflow 3 opens it as a GenAI experiment
_SET_HERE: set[str] = set()  # URIs this process set: `mlflow.set_tracking_uri` copies them into MLFLOW_TRACKING_URI


def default_uri(root: Path) -> str:
    return f"sqlite:///{Path(root) / 'mlflow.db'}"


def tracking_uri(root: Path) -> str:
    """`MLFLOW_TRACKING_URI` when the user set it, else the sqlite store `mlflow.db` in `root`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if env and env not in _SET_HERE else default_uri(root)


def artifact_root(uri: str) -> Path | None:
    """`mlartifacts/` beside a sqlite store's file; None for any other store (a server decides its own)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts"


def _elsewhere(location: str, wanted: Path | None) -> bool:
    """A local artifact location other than `wanted`: the store was copied or moved (or made by older code)."""
    parsed = urlparse(location)
    return wanted is not None and parsed.scheme in ("", "file") and Path(unquote(parsed.path)).resolve() != wanted


def use_experiment(root: Path, experiment: str):
    """The mlflow module, pointed at the project's store and `experiment` (a classic ML experiment whose artifacts,
    for a sqlite store, live in `mlartifacts/` beside it)."""
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(root)
    if uri == default_uri(root):  # ours, not the user's: a later call for another root must not take it for theirs
        _SET_HERE.add(uri)
    mlflow.set_tracking_uri(uri)
    folder = artifact_root(uri)
    wanted = folder / experiment if folder else None
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None and _elsewhere(found.artifact_location, wanted):
        stale = f"{experiment} (artifacts in {found.artifact_location})"  # a copied or moved checkout: keep, set aside
        MlflowClient().rename_experiment(found.experiment_id, stale)
        logging.getLogger(__name__).warning(f"MLflow experiment {experiment!r} kept its artifacts outside this store "
                                            f"({found.artifact_location}): renamed {stale!r}, a new one at {wanted}")
        found = None
    if found is None:
        mlflow.create_experiment(experiment, artifact_location=wanted and wanted.as_uri(), tags={KIND_TAG: KIND})
    elif found.tags.get(KIND_TAG) != KIND:
        MlflowClient().set_experiment_tag(found.experiment_id, KIND_TAG, KIND)
    mlflow.set_experiment(experiment)
    return mlflow


def register(name: str, model_uri: str, aliases: list[str], description: str = "") -> str:
    """A new version of registered model `name` from the logged model `model_uri`, with `aliases` moved onto it;
    returns the version."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)
    version = mlflow.register_model(model_uri, name).version
    for alias in aliases:
        client.set_registered_model_alias(name, alias.replace(".", "-"), version)
    return str(version)


def log_model(mlflow, model_uri: str, name: str, dagster_run_id: str, description: str) -> dict:
    """Register the active run's logged model `model_uri` (`prm_core.prm.pyfunc.log_step_scorer`) as a new version of
    `name`, with the aliases `current` and `dagster-<run>`; returns what the model's own record keeps of it."""
    run = mlflow.active_run()
    version = register(name, model_uri, ["current", f"dagster-{dagster_run_id[:8]}"], description)
    return {"mlflow_run_id": run.info.run_id, "mlflow_model": name, "mlflow_version": version,
            "mlflow_uri": mlflow.get_tracking_uri()}
