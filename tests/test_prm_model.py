"""The PRM: identical encoding at train and score time, a tiny train + score, Auto-class export."""

import pytest

from prm_core.prm_model import PRMExample, PRMTrainConfig, encode, init_prm, score_steps, separator_id, train_prm


def test_encoding_appends_the_separator_id_to_each_step(tiny_policy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    sep = separator_id(tok, "\n")
    e = encode(tok, "Tom has 3 pens. How many now?\n", ["finds 2 more: 3 + 2 = 5", "Answer: 5"], sep)
    assert [e.input_ids[p] for p in e.step_positions] == [sep, sep]
    assert e.step_positions[-1] == len(e.input_ids) - 1
    # the same text tokenised whole gives the same ids here, but the rule never relies on it
    whole = tok("Tom has 3 pens. How many now?\nfinds 2 more: 3 + 2 = 5\nAnswer: 5\n")["input_ids"]
    assert whole == e.input_ids


def test_tiny_prm_learns_hand_labels_and_round_trips(tiny_policy, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    good = PRMExample("Tom has 3 pens. How many now?\n", ["finds 2 more: 3 + 2 = 5", "Answer: 5"], [1.0, 1.0])
    bad = PRMExample("Sam has 4 pens. How many now?\n", ["loses 1: 4 - 1 = 9", "Answer: 9"], [0.0, 0.0])
    model = init_prm(tiny_policy)
    losses = train_prm(model, tok, [good, bad] * 4, "\n", PRMTrainConfig(steps=40, batch_size=4, lr_body=1e-3))
    assert losses[-1] < losses[0]
    scores = score_steps(model, tok, [good.prompt, bad.prompt], [good.steps, bad.steps], "\n")
    assert min(scores[0]) > max(scores[1])
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AutoModelForTokenClassification.from_pretrained(tmp_path)
    assert again.config.num_labels == 1
    assert score_steps(again, tok, [good.prompt], [good.steps], "\n")[0] == pytest.approx(scores[0], abs=1e-5)
