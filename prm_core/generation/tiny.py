"""A tiny policy built locally (no hub), for tests and benches: a 1-layer, 64-wide Llama (head_dim 32, which vLLM's
CPU attention supports) on the arith testbed (or on `domain`: e.g. `ArithAsText`, its problems in the text path's
format), trained a few steps."""

from __future__ import annotations

from pathlib import Path


def build_tiny_policy(path: Path, steps: int = 40, seed: int = 0, domain=None) -> Path:
    from prm_core.domains.arith import ArithDomain
    from prm_core.generation.policy import PolicyConfig, save_policy, tokenizer_corpus, train_policy
    from prm_core.generation.tokenizer import build_tokenizer

    domain = domain or ArithDomain()
    tokenizer = build_tokenizer(tokenizer_corpus(domain, 2000, seed=1))
    cfg = PolicyConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, train_steps=steps, seed=seed)
    model, _ = train_policy(domain, tokenizer, cfg)
    save_policy(model, tokenizer, cfg, path)
    return path
