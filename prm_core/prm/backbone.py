"""The PRM's own backbone: the policy, pre-trained further on reference solutions so that it re-derives results.

The PRM's step score reads its LM's own judgement of each token (modeling_prm.py). With the policy itself as that
LM the verifier can only agree with the policy: its best-of-8 pick is the greedy answer (0.716-0.726 on the
default run, majority vote 0.726). A few hundred more optimizer steps on fresh reference solutions (≈ 1 min on
2 cores) make an LM that re-derives results better than the policy samples them: best-of-8 0.77 ± 0.019, pair
order 0.87 (testbed measurements: docs/prms.md). The data seeds are disjoint from the policy's, the eval's and
every benchmark's. A pretrained (real) policy is used as its own backbone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from prm_core.domains.base import ExactDomain
from prm_core.generation.policy import BACKBONE_SEEDS, policy_config_from, train_policy


@dataclass(frozen=True)
class BackboneConfig:
    train_steps: int = 250  # 400 gave PRM F1 +0.01–0.016 for 22 s more on an AVX2 CPU (docs/benchmarks.md)
    lr: float = 1e-3
    warmup_steps: int = 10
    seed: int = 0  # data stream BACKBONE_SEEDS + seed
    precision: str = "auto"  # auto | bf16 | fp32 (runtime/device.py)

    def __post_init__(self) -> None:
        if not 0 <= self.seed < BACKBONE_SEEDS:
            raise ValueError(f"backbone seed must be in [0, {BACKBONE_SEEDS}), got {self.seed}")


def train_backbone(policy_dir, domain: ExactDomain, cfg: BackboneConfig):
    """(model, tokenizer, report): the policy at `policy_dir` trained `cfg.train_steps` more steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.runtime.progress import quiet_transformers

    quiet_transformers()
    policy_dir = Path(str(policy_dir))
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    base = policy_config_from(json.loads((policy_dir / "policy_config.json").read_text()))
    pcfg = replace(base, train_steps=cfg.train_steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, seed=BACKBONE_SEEDS + cfg.seed,
                   precision=cfg.precision)
    model, report = train_policy(domain, tokenizer, pcfg, model=model)
    return model, tokenizer, pcfg, report
