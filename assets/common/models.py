"""The trained models of the pipeline, for every asset that makes or reads one: where each lives, what its asset
recorded of it (a reproducible json beside the weights, this run's ids and timings in run_info.json), and `register`,
the one MLflow sequence that logs a model's run and registers it as a step scorer."""

from __future__ import annotations

MLFLOW_UI = "http://127.0.0.1:5000"  # `mlflow ui --backend-store-uri sqlite:///mlflow.db` (README)
PRM_EXPERIMENT, PRM_REGISTERED = "prm-foundry-prm", "prm-foundry-prm-{label_set}"
IMPLICIT_EXPERIMENT, IMPLICIT_REGISTERED = "prm-foundry-implicit", "prm-foundry-implicit-{loss}"
ACTPRM_EXPERIMENT, ACTPRM_REGISTERED = "prm-foundry-actprm", "prm-foundry-actprm"
ACTPRM_FINAL_REGISTERED = "prm-foundry-actprm-final"


def prm_dir(storage, label_set: str):
    return storage.model_dir("prm") / label_set


def training_info(path) -> dict:
    """What `prm_model` recorded of a PRM's training: data and loss (training.json), with this run's timing and MLflow
    run, model version and URLs (run_info.json, kept apart so that training.json is reproducible)."""
    from prm_core.lineage.run_info import read_with_run_info

    return read_with_run_info(path, "training.json")


def implicit_dir(storage, loss: str):
    return storage.model_dir("implicit") / loss


def implicit_info(path) -> dict:
    """What `implicit_prm` recorded of a model (implicit.json, loss curve aside) with this run's reference path, timing
    and MLflow run (run_info.json, kept apart so that implicit.json is reproducible)."""
    from prm_core.lineage.run_info import read_with_run_info

    return {k: v for k, v in read_with_run_info(path, "implicit.json").items() if k != "losses"}


def actprm_dir(storage):
    return storage.model_dir("actprm")


def backbone_train_tokens(backbone) -> int:
    """The tokens `prm_backbone` trained on (its train_report.json; every MC PRM's FLOPs count them); a pretrained
    backbone given with --prm-backbone: 0."""
    import json

    report = backbone / "train_report.json"
    return json.loads(report.read_text())["tokens"] if report.exists() else 0


def actprm_info(path) -> dict:
    """What `actprm_model` recorded of its ensemble (actprm.json): thresholds, labels, training config."""
    import json

    return json.loads((path / "actprm.json").read_text())


def register(tracking, experiment: str, run_name: str, scorer: tuple, name: str, run_id: str, description: str, *,
             tags: dict, params: dict, metrics: dict, curve: list[float] = (), every: int = 1) -> dict:
    """One MLflow run of `experiment` for a trained model: its tags (with the Dagster run), params, loss curve
    (`train_loss` at every `every`-th step) and metrics; the model logged as a step scorer (`scorer`: the arguments
    of `prm_core.prm.pyfunc.log_step_scorer`) and registered as a new version of `name` (aliases `current`,
    `dagster-<run>`). Returns what the model's own record keeps of it (`assets.common.tracking.log_model`)."""
    from assets.common.tracking import log_model
    from prm_core.prm.pyfunc import log_step_scorer

    mlflow = tracking.experiment(experiment)
    with mlflow.start_run(run_name=run_name):
        mlflow.set_tags({**tags, "dagster_run_id": run_id})
        mlflow.log_params(params)
        for i in range(0, len(curve), every):
            mlflow.log_metric("train_loss", curve[i], step=i)
        mlflow.log_metrics(metrics)
        return log_model(mlflow, log_step_scorer(*scorer).model_uri, name, run_id, description)


def log_scores(tracking, experiment: str, mlflow_run_id: str | None, row: dict) -> None:
    """A model's benchmark numbers onto the MLflow run that trained it (none recorded: nothing)."""
    if not mlflow_run_id:
        return
    mlflow = tracking.experiment(experiment)
    with mlflow.start_run(run_id=mlflow_run_id):
        mlflow.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def mlflow_ui(mlflow_run_id: str) -> str:
    """The MLflow UI's page of a run of the store `register` just used."""
    import mlflow

    return f"{MLFLOW_UI}/#/experiments/{mlflow.get_run(mlflow_run_id).info.experiment_id}/runs/{mlflow_run_id}"
