"""What `prm run` prints while it runs: the worker's output without third-party noise, and cost words per step
(the stage lines themselves are asserted on a real run in test_cli.py)."""

import io

from orchestration.launch import _forward
from orchestration.stage_lines import cost_words


def _forwarded(raw: bytes, verbose: bool = False) -> str:
    out = io.StringIO()
    _forward(io.BufferedReader(io.BytesIO(raw)), out, verbose)
    return out.getvalue()


NOISY = (b"2026/12/07 16:07:15 WARNING mlflow.pyfunc: Passing a Python object as `python_model` causes it to be "
         b"serialized using CloudPickle, it requires exercising caution\n"
         b"Downloading artifacts:  33%|###  | 1/3\rDownloading artifacts: 100%|#####| 3/3\n"
         b"Registered model 'prm-foundry-actprm' already exists. Creating a new version of this model...\n"
         b"Created version '1' of model 'prm-foundry-actprm'.\n"
         b"Loading weights: 100%|#####| 20/20\n"
         b"rollouts/arith-0000: generate (transformers):  50%|##  | 4/8\r"
         b"Traceback (most recent call last): a real error\n")


def test_third_party_notes_are_dropped_and_the_run_s_own_output_kept():
    shown = _forwarded(NOISY)
    assert "CloudPickle" not in shown and "Downloading artifacts" not in shown and "Registered model" not in shown
    assert "Created version" not in shown and "Loading weights" not in shown
    assert "rollouts/arith-0000: generate (transformers):  50%" in shown and "a real error" in shown


def test_verbose_keeps_everything():
    shown = _forwarded(NOISY, verbose=True)
    assert "CloudPickle" in shown and "Registered model" in shown and "a real error" in shown


def test_cost_words_name_only_what_a_step_spent():
    assert cost_words(78.24, 2, 1234567, 10240, "shard") == "78.2 s (2 shards, 1,234,567 tokens, 10,240 rollouts)"
    assert cost_words(0.31, 1, 0, 0) == "0.3 s"
    assert cost_words(5, 3, 0, 0) == "5.0 s (3 partitions)"
