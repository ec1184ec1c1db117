"""Shared fixtures: a tiny policy built locally (no hub), temporary Dagster instances and data roots."""

import os
import warnings
from pathlib import Path

import pytest

from prm_core.generation.tiny import build_tiny_policy

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PRM_PROGRESS", "0")
warnings.filterwarnings("ignore")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    return build_tiny_policy(tmp_path_factory.mktemp("policy") / "policy")


@pytest.fixture(scope="session")
def text_policy(tmp_path_factory) -> Path:
    """The tiny policy trained on arith problems in the text path's format (tests/support/text_path.py)."""
    from prm_core.domains.arith_text import ArithAsText
    from tests.support.text_path import POLICY_STEPS, PROBLEMS

    return build_tiny_policy(tmp_path_factory.mktemp("text-policy") / "policy", POLICY_STEPS, domain=ArithAsText(PROBLEMS))


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("PRM_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def vllm_server(tiny_policy, tmp_path_factory):
    """A real `vllm serve` on the tiny policy at 127.0.0.1, started once per session, stopped by PID at its end."""
    from prm_core.generation.engines import vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not installed")
    from tests.support.vllm_server import served

    with served(tiny_policy, tmp_path_factory.mktemp("vllm-serve")) as server:
        yield server
