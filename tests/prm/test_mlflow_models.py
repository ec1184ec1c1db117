"""MLflow: every PRM kind registers as a pyfunc model that loads by alias and scores steps as the project does; the
experiments are classic ML ones whose artifacts live beside the sqlite store, also in a copied checkout."""

import shutil

import pytest

from assets.common.tracking import KIND, KIND_TAG, artifact_root, log_model, tracking_uri, use_experiment
from prm_core.prm.pyfunc import log_step_scorer

PROMPTS = ["Tom has 3 pens. He finds 2 more. How many now?\n", "Sam has 4 pens. He loses 1. How many now?\n"]
STEPS = [["finds 2 more: 3 + 2 = 5", "Answer: 5"], ["loses 1: 4 - 1 = 9", "then 9 + 0 = 9", "Answer: 9"]]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout's folder with no MLFLOW_TRACKING_URI: the store is its own `mlflow.db`."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    return root


def _discriminative(tiny_policy, out):
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import init_prm, score_steps

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    model = init_prm(tiny_policy, tok, "\n", seed=3)  # the LM-feature PRM: its class ships beside the weights
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"prm": out}, {"separator": "\n"}, score_steps(model, tok, PROMPTS, STEPS, "\n")


def _implicit(tiny_policy, out):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.evaluation.benchmark_scores import sigmoid_rows
    from prm_core.prm.implicit import implicit_rewards, step_values

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    theta, ref = AutoModelForCausalLM.from_pretrained(tiny_policy), AutoModelForCausalLM.from_pretrained(tiny_policy)
    torch.manual_seed(0)
    with torch.no_grad():  # θ moved off the reference, as training would
        for p in theta.parameters():
            p.add_(0.05 * torch.randn_like(p))
    theta.save_pretrained(out)
    tok.save_pretrained(out)
    values = [step_values(m, tok, PROMPTS, STEPS, "\n") for m in (theta, ref)]
    return ({"theta": out, "ref": tiny_policy}, {"separator": "\n", "coef": 0.05},
            sigmoid_rows(implicit_rewards(*values, 0.05)["q"]))  # benchmark_scores' ProcessBench step scores


def _ensemble(tiny_policy, out):
    import torch
    from transformers import AutoTokenizer

    from prm_core.prm.ensemble import step_scores
    from prm_core.prm.discriminative import init_prm, step_inputs
    from prm_core.prm.ensemble import EnsembleConfig, EnsembleHeads

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    x = step_inputs(init_prm(tiny_policy, tok, "\n"), tok, PROMPTS, STEPS, "\n")
    torch.manual_seed(0)
    heads = EnsembleHeads(EnsembleConfig(input_size=x[0].shape[1], num_heads=3, hidden=8))
    heads.set_input_stats(x)
    heads.save_pretrained(out)
    return {"heads": out, "backbone": tiny_policy}, {"separator": "\n"}, step_scores(heads, x)


@pytest.mark.parametrize("kind,build", [("discriminative", _discriminative), ("implicit", _implicit),
                                        ("ensemble", _ensemble)])
def test_a_registered_prm_loads_by_alias_and_scores_steps_as_the_project_does(kind, build, tiny_policy, project, tmp_path):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    artifacts, config, expected = build(tiny_policy, tmp_path / kind)
    tracking = use_experiment(project, "prm-foundry-test")
    name = f"prm-foundry-test-{kind}"
    with tracking.start_run():
        scorer = log_step_scorer(kind, artifacts, config, (PROMPTS[0], STEPS[0]))
        logged = log_model(tracking, scorer.model_uri, name, "abcdef1234567", "a test PRM")
    assert logged["mlflow_version"] == "1" and logged["mlflow_uri"] == f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient()
    assert client.get_model_version_by_alias(name, "dagster-abcdef12").version == 1
    model = mlflow.pyfunc.load_model(f"models:/{name}@current")
    scores = model.predict(pd.DataFrame({"question": PROMPTS, "steps": STEPS}))
    assert [len(s) for s in scores] == [2, 3]
    assert scores == [pytest.approx(row, abs=1e-6) for row in expected]
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["question", "steps"] and str(sig.outputs.inputs[0].type) == "Array(double)"
    assert model.metadata.saved_input_example_info["type"] == "dataframe"
    experiment = tracking.get_experiment_by_name("prm-foundry-test")
    assert experiment.tags[KIND_TAG] == KIND
    source = client.get_model_version(name, "1").source
    assert source.startswith("models:/")
    stored = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    assert stored.startswith((project / "mlartifacts" / "prm-foundry-test").as_uri())
    assert any((project / "mlartifacts").rglob("MLmodel"))


def test_a_copied_store_keeps_its_artifacts_beside_the_copy(project, tmp_path):
    import mlflow

    def log_one(root, text):
        tracking = use_experiment(root, "prm-foundry-test")
        with tracking.start_run() as run:
            tracking.log_text(text, "note.txt")
        return run.info.run_id

    log_one(project, "first")
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's own env copy is no override
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(project / "mlflow.db", copy / "mlflow.db")
    before = sorted(p for p in (project / "mlartifacts").rglob("*"))
    run_id = log_one(copy, "second")
    assert sorted(p for p in (project / "mlartifacts").rglob("*")) == before  # the original is untouched
    assert (copy / "mlartifacts" / "prm-foundry-test" / run_id / "artifacts" / "note.txt").read_text() == "second"
    experiments = {e.name: e for e in mlflow.search_experiments()}
    stale = f"prm-foundry-test (artifacts in {(project / 'mlartifacts' / 'prm-foundry-test').as_uri()})"
    assert stale in experiments  # the old runs stay visible, their artifacts named
    assert experiments["prm-foundry-test"].tags[KIND_TAG] == KIND
    log_one(copy, "third")  # a store whose artifacts are in place is used as it is
    assert len(mlflow.search_experiments()) == len(experiments)
    assert artifact_root(tracking_uri(copy)) == copy / "mlartifacts"


def test_a_user_tracking_uri_holds_for_every_call(tmp_path, monkeypatch):
    """`MLFLOW_TRACKING_URI` set by the user stays the store for later calls in the same process (a run worker
    logs training, then benchmark metrics into the same runs)."""
    from assets.common.tracking import tracking_uri, use_experiment

    uri = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    use_experiment(tmp_path / "a", "first")
    use_experiment(tmp_path / "b", "second")
    assert tracking_uri(tmp_path / "c") == uri
