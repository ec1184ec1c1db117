"""Shared fixtures: a tiny policy built locally (no hub), temporary Dagster instances and data roots."""

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PRM_PROGRESS", "0")
warnings.filterwarnings("ignore")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def build_tiny_policy(path: Path, steps: int = 40, seed: int = 0) -> Path:
    """A 1-layer, 64-wide Llama (head_dim 32, which vLLM's CPU attention supports), trained a few steps."""
    from prm_core.domains.arith import ArithDomain
    from prm_core.generation.policy import PolicyConfig, save_policy, tokenizer_corpus, train_policy
    from prm_core.generation.tokenizer import build_tokenizer

    domain = ArithDomain()
    tokenizer = build_tokenizer(tokenizer_corpus(domain, 2000, seed=1))
    cfg = PolicyConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, train_steps=steps, seed=seed)
    model, _ = train_policy(domain, tokenizer, cfg)
    save_policy(model, tokenizer, cfg, path)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    return build_tiny_policy(tmp_path_factory.mktemp("policy") / "policy")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("PRM_DATA_DIR", str(d))
    return d
