"""The implicit PRM: its four losses on hand-made log-ratios, masking, telescoping, a frozen reference, a tiny run."""

import math

import pytest
import torch

from prm_core.prm.implicit import (
    ImplicitConfig,
    Outcome,
    encode_responses,
    implicit_rewards,
    preference_pairs,
    sequence_logps,
    step_values,
    train_implicit,
)
from prm_core.prm.losses import ce_loss, dpo_loss, kto_loss, nca_loss


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_losses_match_hand_computed_values():
    assert ce_loss(torch.tensor([0.0, 2.0]), torch.tensor([1, 0])).item() == pytest.approx(
        (math.log(2) + -math.log(1 - sig(2.0))) / 2)
    assert dpo_loss(torch.tensor([1.0]), torch.tensor([0.0])).item() == pytest.approx(-math.log(sig(1.0)))
    # KTO: z = max(KL, 0) = 0.5; desirable 1 − σ(ρ − z), undesirable 1 − σ(z − ρ)
    kto = kto_loss(torch.tensor([1.0, -1.0]), torch.tensor([1, 0]), torch.tensor(0.5)).item()
    assert kto == pytest.approx(((1 - sig(0.5)) + (1 - sig(1.5))) / 2)
    assert kto_loss(torch.tensor([1.0]), torch.tensor([1]), torch.tensor(-3.0)).item() == pytest.approx(1 - sig(1.0))  # KL ≥ 0
    nca = nca_loss(torch.tensor([1.0]), torch.tensor([-1.0])).item()
    assert nca == pytest.approx(-math.log(sig(1.0)) - 0.5 * math.log(sig(-1.0)) - 0.5 * math.log(sig(1.0)))


@pytest.mark.parametrize("loss", ["ce", "dpo", "kto", "nca"])
def test_gradients_raise_correct_and_lower_incorrect_responses(loss):
    good, bad = torch.tensor([0.2], requires_grad=True), torch.tensor([0.1], requires_grad=True)
    if loss == "ce":
        value = ce_loss(torch.cat([good, bad]), torch.tensor([1, 0]))
    elif loss == "kto":
        value = kto_loss(torch.cat([good, bad]), torch.tensor([1, 0]), torch.tensor(0.0))
    else:
        value = (dpo_loss if loss == "dpo" else nca_loss)(good, bad)
    value.backward()
    assert good.grad.item() < 0 < bad.grad.item()  # descent raises ρ of the correct response, lowers the other's


def test_kto_baseline_is_detached():
    kl = torch.tensor(0.3, requires_grad=True)
    kto_loss(torch.tensor([0.5], requires_grad=True), torch.tensor([1]), kl).backward()
    assert kl.grad is None


def test_pairs_are_every_correct_incorrect_combination_of_one_question():
    data = [Outcome("a", "", ["x"], True), Outcome("a", "", ["y"], False), Outcome("a", "", ["z"], False),
            Outcome("b", "", ["x"], True), Outcome("c", "", ["y"], False)]
    assert preference_pairs(data) == [(0, 1), (0, 2)]  # b and c have one outcome only: no pair


def _models(tiny_policy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(tiny_policy), AutoModelForCausalLM.from_pretrained(tiny_policy),
            AutoTokenizer.from_pretrained(tiny_policy))


PROMPT, STEPS = "Tom has 3 pens. He finds 2 more. How many now?\n", ["finds 2 more: 3 + 2 = 5", "Answer: 5"]


def test_log_probs_cover_response_tokens_only_and_steps_telescope(tiny_policy):
    theta, ref, tok = _models(tiny_policy)
    (seq,) = encode_responses(tok, [PROMPT], [STEPS], "\n")
    ids = torch.tensor([seq.encoded.input_ids])
    with torch.no_grad():
        lp = theta(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    by_hand = float(lp[seq.start - 1:].sum())  # tokens start.. (predicted from position start-1 on)
    assert float(sequence_logps(theta, [seq], "cpu")[0]) == pytest.approx(by_hand, abs=1e-4)
    cum = step_values(theta, tok, [PROMPT], [STEPS], "\n")[0]
    assert len(cum) == 2 and cum[-1] == pytest.approx(by_hand, abs=1e-4)  # the last step ends the response
    with torch.no_grad():  # θ ≠ ref: a different model gives a non-zero log-ratio
        for p in theta.parameters():
            p.add_(0.01 * torch.randn_like(p))
    t, r = step_values(theta, tok, [PROMPT], [STEPS], "\n"), step_values(ref, tok, [PROMPT], [STEPS], "\n")
    beta, coef = 0.05, 0.2
    rw = implicit_rewards(t, r, coef)
    rho = beta * (t[0][-1] - r[0][-1])
    assert sum(rw["r"][0]) == pytest.approx(coef / beta * rho) and rw["q"][0][-1] == pytest.approx(sum(rw["r"][0]))
    assert implicit_rewards(t, None, coef)["q"][0] == pytest.approx([coef * v for v in t[0]])  # w/o ref


def test_repeated_responses_are_scored_once_and_get_the_same_values(tiny_policy):
    theta, _, tok = _models(tiny_policy)
    other = ["finds 2 more: 3 + 2 = 6", "Answer: 6"]
    calls = []
    hook = theta.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        values = step_values(theta, tok, [PROMPT] * 3, [STEPS, other, STEPS], "\n")
    finally:
        hook.remove()
    assert values[0] == values[2] and values[0] != values[1]
    assert values == [step_values(theta, tok, [PROMPT], [s], "\n")[0] for s in (STEPS, other, STEPS)]
    assert sum(calls) == 2  # best-of-N candidates repeat: each distinct input is forwarded once


@pytest.mark.parametrize("loss", ["ce", "dpo", "kto", "nca"])
def test_training_moves_theta_and_leaves_the_reference_bit_identical(tiny_policy, loss):
    theta, ref, tok = _models(tiny_policy)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    data = [Outcome("a", PROMPT, STEPS, True), Outcome("a", PROMPT, ["finds 2 more: 3 + 2 = 6", "Answer: 6"], False),
            Outcome("b", PROMPT.replace("3", "4"), ["finds 2 more: 4 + 2 = 6", "Answer: 6"], True),
            Outcome("b", PROMPT.replace("3", "4"), ["finds 2 more: 4 + 2 = 7", "Answer: 7"], False)]
    losses, stats = train_implicit(theta, ref, tok, data, "\n", ImplicitConfig(loss=loss, lr=1e-3, epochs=20, batch_size=2))
    assert all(torch.equal(v, before[k]) for k, v in ref.state_dict().items())
    assert stats["steps"] == 20 * (1 if loss in ("dpo", "nca") else 2) and stats["tokens_trained"] > 0
    assert sum(losses[-4:]) < sum(losses[:4])
    good, bad = step_values(theta, tok, [PROMPT] * 2, [data[0].steps, data[1].steps], "\n")
    ref_good, ref_bad = step_values(ref, tok, [PROMPT] * 2, [data[0].steps, data[1].steps], "\n")
    assert good[-1] - ref_good[-1] > bad[-1] - ref_bad[-1]  # ρ(correct) > ρ(incorrect) on the training question


def test_unknown_loss_and_no_pairs_are_clear_errors(tiny_policy):
    theta, ref, tok = _models(tiny_policy)
    with pytest.raises(ValueError, match="unknown implicit PRM loss"):
        ImplicitConfig(loss="ipo")
    with pytest.raises(ValueError, match="no question has both"):
        train_implicit(theta, ref, tok, [Outcome("a", PROMPT, STEPS, True)], "\n", ImplicitConfig(loss="dpo"))
