"""The PRM: identical encoding at train and score time, result-span features, a tiny train + score, Auto-class export."""

import json
import subprocess
import sys

import pytest

from prm_core.prm.discriminative import PRMTrainConfig, init_prm, load_prm, score_steps, train_prm
from prm_core.prm.encoding import encode, separator_id
from tests.support.prm import BAD, GOOD



def test_encoding_appends_the_separator_id_to_each_step(tiny_policy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    sep = separator_id(tok, "\n")
    e = encode(tok, GOOD.prompt, GOOD.steps, sep)
    assert [e.input_ids[p] for p in e.step_positions] == [sep, sep]
    assert e.step_positions[-1] == len(e.input_ids) - 1
    # the same text tokenised whole gives the same ids here, but the rule never relies on it
    whole = tok("Tom has 3 pens. How many now?\nfinds 2 more: 3 + 2 = 5\nAnswer: 5\n")["input_ids"]
    assert whole == e.input_ids


def test_span_minima_cover_the_tokens_after_the_last_marker_and_the_separator():
    import torch

    from prm_core.prm.modeling_prm import span_minima

    # ids: 5 = marker, 9 = separator; step 1 = [1 5 2 3 | 9], step 2 (no marker) = [4 4 | 9]
    ids = torch.tensor([[1, 5, 2, 3, 9, 4, 4, 9]])
    lp = torch.tensor([[-7.0, -1.0, -0.5, -2.0, -9.0, -3.0, -0.2, -9.0]])
    feats = span_minima(ids, lp, lp * 2, separator_id=9, marker_ids=[5])
    # at the first separator: min over [2, 3] (not the -7 before the marker, not the separator's own -9)
    assert feats[0, 4].tolist() == pytest.approx([-2.0, -4.0])
    # at the second: no marker, so the whole step [4, 4]
    assert feats[0, 7].tolist() == pytest.approx([-3.0, -6.0])


def test_tiny_prm_learns_hand_labels_and_round_trips(tiny_policy, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    model = init_prm(tiny_policy, tok, "\n")
    cfg = PRMTrainConfig(steps=40, batch_size=4, lr_body=1e-3, freeze_backbone=False)
    losses = train_prm(model, tok, [GOOD, BAD] * 4, "\n", cfg)
    assert losses[-1] < losses[0]
    scores = score_steps(model, tok, [GOOD.prompt, BAD.prompt], [GOOD.steps, BAD.steps], "\n")
    assert min(scores[0]) > max(scores[1])
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = load_prm(tmp_path)
    assert isinstance(again, AutoModelForTokenClassification._model_mapping[type(again.config)])  # noqa: SLF001
    assert again.config.num_labels == 1
    assert score_steps(again, tok, [GOOD.prompt], [GOOD.steps], "\n")[0] == pytest.approx(scores[0], abs=1e-5)


def test_frozen_backbone_trains_the_head_only(tiny_policy):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    model = init_prm(tiny_policy, tok, "\n")
    body = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith(("score", "feature_score"))}
    losses = train_prm(model, tok, [GOOD, BAD] * 4, "\n", PRMTrainConfig(steps=30, batch_size=4))
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, body[n]) for n, p in model.named_parameters() if n in body)


def test_repeated_inputs_get_identical_scores_and_step_inputs(tiny_policy):
    import torch
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import step_inputs
    from prm_core.prm.encoding import first_occurrences

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    model = init_prm(tiny_policy, tok, "\n")
    prompts, steps = [GOOD.prompt] * 3, [GOOD.steps, BAD.steps, GOOD.steps]
    sep = separator_id(tok, "\n")
    assert first_occurrences([encode(tok, p, s, sep) for p, s in zip(prompts, steps)]) == [0, 1, 0]
    scores = score_steps(model, tok, prompts, steps, "\n")
    assert scores[0] == scores[2] and scores[0] != scores[1]
    x = step_inputs(model, tok, prompts, steps, "\n")
    alone = step_inputs(model, tok, prompts[1:2], steps[1:2], "\n")[0]
    assert torch.equal(x[0], x[2]) and torch.allclose(x[1], alone, atol=1e-5)


def test_prms_on_one_frozen_backbone_share_its_forward(tiny_policy):
    """Two heads trained on one frozen backbone: given one `shared` dict, the second runs no backbone forward, and both
    score exactly as alone; a PRM on another backbone computes its own."""
    import torch
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import backbone_key

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    a, b, other = (init_prm(tiny_policy, tok, "\n") for _ in range(3))
    train_prm(b, tok, [GOOD, BAD] * 4, "\n", PRMTrainConfig(steps=20, batch_size=4))
    with torch.no_grad():
        next(other.lm.parameters()).add_(0.01)
    assert backbone_key(a) == backbone_key(b) != backbone_key(other)
    prompts, steps = [GOOD.prompt, BAD.prompt, GOOD.prompt], [GOOD.steps, BAD.steps, GOOD.steps]
    shared, calls = {}, []
    for m in (a, b, other):
        m.lm.base_model.register_forward_hook(lambda *_: calls.append(1))
    for m in (a, b, other):
        before = len(calls)
        together = score_steps(m, tok, prompts, steps, "\n", shared=shared.setdefault(backbone_key(m), {}))
        ran = len(calls) - before
        alone = score_steps(m, tok, prompts, steps, "\n")
        assert all(x == pytest.approx(y, abs=1e-6) for r, q in zip(together, alone) for x, y in zip(r, q))
        assert ran == (0 if m is b else 1)  # one batch of the two distinct inputs; none for b
    assert len(shared) == 2 and [len(rows) for rows in shared.values()] == [2, 2]  # two backbones, two inputs each


def test_exported_prm_loads_with_auto_classes_without_this_package(tiny_policy, tmp_path):
    """A user's fresh Python (no prm_core on the path) loads the export with the stock Auto classes."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    model = init_prm(tiny_policy, tok, "\n")
    model.save_pretrained(tmp_path / "prm")
    tok.save_pretrained(tmp_path / "prm")
    expected = score_steps(model, tok, [GOOD.prompt], [GOOD.steps], "\n")[0]
    script = f"""
import json, torch
from transformers import AutoModelForTokenClassification, AutoTokenizer
path = {str(tmp_path / "prm")!r}
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True).eval()
sep = tok("\\n", add_special_tokens=False)["input_ids"][-1]
ids = tok({GOOD.prompt!r})["input_ids"]
pos = []
for step in {GOOD.steps!r}:
    ids += tok(step, add_special_tokens=False)["input_ids"] + [sep]
    pos.append(len(ids) - 1)
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0, pos, 0]
print(json.dumps(torch.sigmoid(logits).tolist()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == pytest.approx(expected, abs=1e-5)


def test_hidden_state_term_is_off_by_default_and_round_trips(tiny_policy, tmp_path):
    """Off, the step logit is b + Σ α·f: it cannot read (and learn a prior from) the hidden states."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    off, on = init_prm(tiny_policy, tok, "\n"), init_prm(tiny_policy, tok, "\n", hidden_term=True)
    hidden, feats = torch.randn(3, 5, off.config.hidden_size), torch.randn(3, 5, 4)
    assert torch.equal(off.head(hidden, feats), off.head(hidden * 7 + 1, feats))
    assert not torch.allclose(on.head(hidden, feats), on.head(hidden * 7 + 1, feats))
    train_prm(off, tok, [GOOD, BAD] * 4, "\n", PRMTrainConfig(steps=10, batch_size=4))
    assert torch.count_nonzero(off.score.weight) == 0  # never read, never trained
    off.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert load_prm(tmp_path).config.hidden_term is False
