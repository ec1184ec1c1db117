"""The PRM backbone: the policy trained further on its own data seeds, leaving the policy untouched."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from prm_core.domains.arith import ArithDomain
from prm_core.generation.policy import BACKBONE_SEEDS
from prm_core.prm.backbone import BackboneConfig, train_backbone


def test_backbone_continues_the_policy_on_its_own_seeds(tiny_policy):
    before = AutoModelForCausalLM.from_pretrained(tiny_policy)
    model, tokenizer, pcfg, report = train_backbone(tiny_policy, ArithDomain(), BackboneConfig(train_steps=3, seed=1))
    assert report.steps == 3 and pcfg.seed == BACKBONE_SEEDS + 1 and pcfg.hidden_size == 64
    changed = any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), model.state_dict().values()))
    assert changed and len(tokenizer) == before.config.vocab_size
    again = AutoModelForCausalLM.from_pretrained(tiny_policy)  # the policy on disk is not modified
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), again.state_dict().values()))


def test_backbone_seed_must_stay_in_its_range():
    with pytest.raises(ValueError, match="backbone seed"):
        BackboneConfig(seed=BACKBONE_SEEDS)
