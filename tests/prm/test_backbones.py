"""Any causal-LM backbone: tiny random-init Qwen2 and Llama (2 layers, built here, no hub) through
train -> score -> export -> reload -> identical scores, with and without the LM features."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from prm_core.prm.discriminative import PRMTrainConfig, init_prm, load_prm, score_steps, train_prm
from tests.support.prm import BAD, GOOD

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256)


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def backbone(request, tiny_policy, tmp_path_factory):
    tok = AutoTokenizer.from_pretrained(tiny_policy)
    config = AutoConfig.for_model(request.param, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **SHAPE)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param) / "lm"
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return request.param, path, tok


@pytest.mark.parametrize("features", [True, False])
@pytest.mark.parametrize("freeze", [True, False])
def test_backbone_trains_scores_exports_and_reloads(backbone, features, freeze, tmp_path):
    arch, path, tok = backbone
    model = init_prm(path, tok, "\n", features=features)
    assert model.config.separator_id == tok("\n", add_special_tokens=False)["input_ids"][-1]
    losses = train_prm(model, tok, [GOOD, BAD] * 4, "\n", PRMTrainConfig(steps=25, batch_size=4, freeze_backbone=freeze))
    assert sum(losses[-2:]) < sum(losses[:2])  # batches alternate (length-bucketed): compare pairs
    scores = score_steps(model, tok, [GOOD.prompt, BAD.prompt], [GOOD.steps, BAD.steps], "\n")
    model.save_pretrained(tmp_path / "prm")
    tok.save_pretrained(tmp_path / "prm")
    config = json.loads((tmp_path / "prm" / "config.json").read_text())
    if features:
        assert config["model_type"] == "prm_step_verifier" and config["backbone_config"]["model_type"] == arch
        assert (tmp_path / "prm" / "modeling_prm.py").exists()
    else:
        assert config["architectures"] == [f"{'Qwen2' if arch == 'qwen2' else 'Llama'}ForTokenClassification"]
        assert not (tmp_path / "prm" / "modeling_prm.py").exists()
    again = load_prm(tmp_path / "prm")
    reloaded = score_steps(again, tok, [GOOD.prompt, BAD.prompt], [GOOD.steps, BAD.steps], "\n")
    assert sum(reloaded, []) == pytest.approx(sum(scores, []), abs=1e-5)


def test_stock_token_classifier_loads_without_remote_code(backbone, tmp_path):
    arch, path, tok = backbone
    model = init_prm(path, tok, "\n", features=False)
    model.save_pretrained(tmp_path / "prm")
    script = f"""
from transformers import AutoModelForTokenClassification
m = AutoModelForTokenClassification.from_pretrained({str(tmp_path / "prm")!r})
print(type(m).__name__, m.config.num_labels, m.config.separator_id)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    name, labels, sep = out.stdout.split()
    assert name.endswith("ForTokenClassification") and labels == "1" and int(sep) == model.config.separator_id


def test_lora_and_gradient_checkpointing_fine_tune_the_same_model(backbone):
    pytest.importorskip("peft")
    arch, path, tok = backbone
    model = init_prm(path, tok, "\n", features=True)
    names = sorted(n for n, _ in model.named_parameters())
    cfg = PRMTrainConfig(steps=20, batch_size=4, freeze_backbone=False, lora_rank=4, gradient_checkpointing=True)
    losses = train_prm(model, tok, [GOOD, BAD] * 4, "\n", cfg)
    assert sum(losses[-2:]) < sum(losses[:2])  # batches alternate (length-bucketed): compare pairs
    assert sorted(n for n, _ in model.named_parameters()) == names  # adapters merged back: a plain PRM
    assert all(torch.isfinite(p).all() for p in model.parameters())
