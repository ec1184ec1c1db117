"""The policy: schedule, training reduces the loss, saved model loads with Auto classes."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from prm_core.generation.policy import PolicyConfig, lr_at


def test_lr_schedule_warms_up_then_decays_to_floor():
    cfg = PolicyConfig(train_steps=100, warmup_steps=10, lr=1e-3, decay_fraction=0.3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) < lr_at(9, cfg) == 1e-3 == lr_at(69, cfg)  # warm-up, then the peak held to 70 %
    assert lr_at(70, cfg) == 1e-3 > lr_at(85, cfg) > lr_at(99, cfg) and abs(lr_at(100, cfg) - 1e-4) < 1e-9


def test_saved_policy_loads_with_auto_classes(tiny_policy):
    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tok = AutoTokenizer.from_pretrained(tiny_policy)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    assert (tiny_policy / "model.safetensors").exists()


def test_training_lowers_the_loss(tmp_path):
    from prm_core.domains.arith import ArithDomain
    from prm_core.generation.policy import tokenizer_corpus, train_policy
    from prm_core.generation.tokenizer import build_tokenizer

    d = ArithDomain()
    tok = build_tokenizer(tokenizer_corpus(d, 500, seed=1))
    cfg = PolicyConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, train_steps=60, seed=3)
    _, report = train_policy(d, tok, cfg)
    assert report.final_loss < 3.0 and report.steps == 60 and report.tokens > 0


def test_training_is_deterministic_by_seed():
    import torch

    from prm_core.domains.arith import ArithDomain
    from prm_core.generation.policy import tokenizer_corpus, train_policy
    from prm_core.generation.tokenizer import build_tokenizer

    d = ArithDomain()
    tok = build_tokenizer(tokenizer_corpus(d, 300, seed=1))
    cfg = PolicyConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, train_steps=8, seed=11)
    a, _ = train_policy(d, tok, cfg)
    b, _ = train_policy(d, tok, cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
