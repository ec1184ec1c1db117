"""Every PRM kind as one MLflow pyfunc model that scores steps, so `mlflow.pyfunc.load_model("models:/<name>@current")`
serves any registered PRM:

    model.predict(pd.DataFrame({"question": [prompt], "steps": [["2 + 3 = 5", "5 * 2 = 10"]]}))  # [[0.93, 0.88]]

`question` is the prompt the PRM reads before the steps (a benchmark set's `prompt`), `steps` the step texts; each
row gives one score per step, the project's own scoring of its kind: the discriminative PRM's σ(logit) at each
separator (`score_steps`), the implicit PRM's σ(Q_k) against its reference (as `benchmark_scores` scores it on
ProcessBench), ActPRM's mean over heads on the backbone's feature PRM (`active.pool.step_scores`). The model carries
this package (`code_paths`), so loading it needs MLflow, torch and transformers only; mlflow is imported only when
a model is logged or loaded.
"""

import math
from pathlib import Path

KINDS = {"discriminative": ("prm",), "implicit": ("theta", "ref"), "ensemble": ("heads", "backbone")}  # its folders


def _discriminative(config: dict, artifacts: dict):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from prm_core.prm.discriminative import register_auto_classes, score_steps

    register_auto_classes()
    model = AutoModelForTokenClassification.from_pretrained(artifacts["prm"]).eval()
    tok = AutoTokenizer.from_pretrained(artifacts["prm"])
    return lambda prompts, steps: score_steps(model, tok, prompts, steps, config["separator"])


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def _implicit(config: dict, artifacts: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.prm.implicit import implicit_rewards, step_values

    tok = AutoTokenizer.from_pretrained(artifacts["theta"])
    theta, ref = (AutoModelForCausalLM.from_pretrained(artifacts[k]) for k in ("theta", "ref"))

    def score(prompts, steps):
        values = [step_values(m, tok, prompts, steps, config["separator"]) for m in (theta, ref)]
        return [[_sigmoid(q) for q in row] for row in implicit_rewards(*values, config["coef"])["q"]]

    return score


def _ensemble(config: dict, artifacts: dict):
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import init_prm, step_inputs
    from prm_core.prm.ensemble import EnsembleHeads, step_scores

    tok = AutoTokenizer.from_pretrained(artifacts["backbone"])
    backbone = init_prm(artifacts["backbone"], tok, config["separator"])  # its head is unused: heads read its inputs
    heads = EnsembleHeads.from_pretrained(artifacts["heads"]).eval()

    def score(prompts, steps):
        inputs = step_inputs(backbone, tok, prompts, steps, config["separator"])
        return step_scores(heads, inputs)

    return score


def load_scorer(config: dict, artifacts: dict):
    """`scores(prompts, steps) -> per-step scores` of the PRM a logged model's config and artifact folders describe."""
    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown PRM kind {kind!r} in the model's config (one of {sorted(KINDS)})")
    return {"discriminative": _discriminative, "implicit": _implicit, "ensemble": _ensemble}[kind](config, artifacts)


def _scorer_class():
    import mlflow.pyfunc
    import pandas as pd

    class StepScorer(mlflow.pyfunc.PythonModel):
        """Scores the steps of each row (`question`, `steps`) with the PRM of the model's `kind`."""

        def load_context(self, context):
            self.scores = load_scorer(context.model_config, context.artifacts)

        def predict(self, context, model_input: pd.DataFrame, params=None):  # a hint MLflow infers nothing from
            steps = [[str(s) for s in row] for row in model_input["steps"]]  # rows arrive as arrays
            return self.scores([str(q) for q in model_input["question"]], steps)

    StepScorer.__module__, StepScorer.__qualname__ = __name__, "StepScorer"  # pickled by reference, found on load
    return StepScorer


def __getattr__(name: str):
    """`StepScorer`, built on first use: importing this module needs no mlflow."""
    if name != "StepScorer":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["StepScorer"] = cls = _scorer_class()
    return cls


def signature():
    """Input: `question` (str) and `steps` (list of str) per row; output: per row, a list of step scores."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    inputs = Schema([ColSpec(DataType.string, "question"), ColSpec(Array(DataType.string), "steps")])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(Array(DataType.double))]))


def pinned_requirements() -> list[str]:
    """What a logged model needs, pinned to this environment's versions (MLflow's own inference would load the
    model once more, in a subprocess)."""
    import mlflow
    import torch
    import transformers

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"transformers=={transformers.__version__}"]


def log_step_scorer(kind: str, artifacts: dict, config: dict, example: tuple[str, list[str]], name: str = "model"):
    """Log a PRM of `kind` (its local folders `artifacts`, its scoring `config`: separator, coef for implicit) in the
    active MLflow run as a pyfunc model with a signature and the input example `(question, steps)`; its ModelInfo.

    Requirements are pinned (`pinned_requirements`)."""
    import mlflow
    import pandas as pd

    missing = set(KINDS.get(kind, ())) - set(artifacts)
    if kind not in KINDS or missing:
        raise ValueError(f"a {kind!r} PRM needs the folders {KINDS.get(kind)}; missing {sorted(missing)}")
    from prm_core.prm.pyfunc import StepScorer

    return mlflow.pyfunc.log_model(
        name=name, python_model=StepScorer(), artifacts={k: str(v) for k, v in artifacts.items()},
        model_config={**config, "kind": kind},
        code_paths=[str(Path(__file__).resolve().parents[1])], signature=signature(),
        input_example=pd.DataFrame({"question": [example[0]], "steps": [list(example[1])]}),
        pip_requirements=[*pinned_requirements(), f"pandas=={pd.__version__}"])
