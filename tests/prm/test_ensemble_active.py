"""ActPRM: ensemble heads (loss, regulariser, save/load), the selection rule, NaN-free empty batches, judges."""

import math

import pytest
import torch

from prm_core.active.judges import (
    CritiqueJudge,
    ExactJudge,
    MCJudge,
    Trajectory,
    critique_prompt,
    hard_labels,
    parse_critique,
)
from prm_core.active.pool import ActiveConfig, active_pass, train_on
from prm_core.active.uncertainty import trajectory_uncertainty
from prm_core.domains.arith import ArithDomain
from prm_core.domains.base import Problem
from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec
from prm_core.prm.ensemble import EnsembleConfig, EnsembleHeads, EnsembleTrainConfig, ensemble_loss, step_scores
from tests.scripted import ScriptedEngine


def heads(e=4, d=6, seed=0):
    torch.manual_seed(seed)
    return EnsembleHeads(EnsembleConfig(input_size=d, num_heads=e, hidden=8))


def test_selection_rule_on_hand_made_probabilities_with_bessels_correction():
    # E = 2: std of (0.9, 0.7) is 0.1414 with Bessel's correction (0.1 without)
    probs = torch.tensor([[0.9, 0.2, 0.9], [0.7, 0.1, 0.9]])
    u = trajectory_uncertainty(probs, delta_pred=0.7, delta_std=0.12)
    assert u.first_predicted_error == 1 and u.max_std == pytest.approx(math.sqrt(0.02), abs=1e-6)
    assert u.epistemic and not u.aleatoric and u.selected  # μ_0 = 0.8 ≥ 0.7, μ_1 = 0.15 → confidence 0.85
    assert not trajectory_uncertainty(probs, delta_pred=0.7, delta_std=0.15).selected  # 0.1414 < 0.15
    # steps after the first predicted error are ignored: a wild step 2 changes nothing
    wild = torch.tensor([[0.9, 0.2, 0.99], [0.9, 0.2, 0.01]])
    assert not trajectory_uncertainty(wild, delta_pred=0.7, delta_std=0.05).selected
    # aleatoric: a step with μ = 0.55 is unsure at δ_pred = 0.9
    assert trajectory_uncertainty(torch.tensor([[0.55], [0.55]]), 0.9, 1.0).aleatoric


def test_empty_mask_gives_a_finite_loss_with_a_graph_and_no_nan():
    h = heads()
    x, y = torch.randn(3, 6), torch.tensor([1.0, 1.0, 0.0])
    loss = ensemble_loss(h, x, y, torch.tensor([0, 0, 1]), EnsembleTrainConfig(learning_probability=0.0))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0) and loss.requires_grad


def test_a_confident_pool_takes_no_step():
    h = heads()
    before = h.flat().detach().clone()
    trajs = [Trajectory(f"r{i}", Problem(f"p{i}", "q", "1"), ["a", "b"]) for i in range(5)]
    judge = ExactJudge(ArithDomain())
    decisions, losses = active_pass(h, [torch.randn(2, 6) for _ in trajs], trajs, judge,
                                    ActiveConfig(delta_pred=0.0, delta_std=2.0, batch_size=2))
    assert losses == [] and judge.cost.calls == 0 and not any(d.labelled for d in decisions)
    assert torch.equal(h.flat(), before)


def test_regulariser_pulls_the_heads_toward_their_init():
    x, y = torch.randn(64, 6), (torch.rand(64) > 0.5).float()
    labels = [[float(v)] for v in y]
    drift = {}
    for lam in (0.0, 50.0):
        h = heads()
        train_on(h, list(x[:, None, :]), labels, ActiveConfig(batch_size=8, train=EnsembleTrainConfig(lr=1e-2, reg_lambda=lam)))
        drift[lam] = ((h.flat() - h.anchor) ** 2).mean().item()
    assert drift[50.0] < drift[0.0] / 5


def test_train_on_takes_one_pass_or_exactly_the_steps_asked_over_reshuffled_passes():
    x, labels = [torch.randn(2, 6) for _ in range(10)], [[1.0, 0.0]] * 10
    assert len(train_on(heads(), x, labels, ActiveConfig(batch_size=4))) == 3  # one pass: 4 + 4 + 2
    assert len(train_on(heads(), x, labels, ActiveConfig(batch_size=4), steps=7)) == 7  # passes 1, 2 and one batch of 3
    assert len(train_on(heads(), x, labels, ActiveConfig(batch_size=4), steps=2)) == 2
    assert train_on(heads(), [], [], ActiveConfig(batch_size=4), steps=5) == []  # nothing to train on: no step


def test_heads_round_trip_through_save_and_load(tmp_path):
    h = heads(e=3)
    train_on(h, [torch.randn(2, 6) for _ in range(8)], [[1.0, 0.0]] * 8, ActiveConfig(batch_size=4))
    h.save_pretrained(tmp_path)
    again = EnsembleHeads.from_pretrained(tmp_path)
    assert all(torch.isfinite(p).all() for p in again.parameters())
    assert torch.equal(again.flat(), h.flat()) and torch.equal(again.anchor, h.anchor)
    x = torch.randn(4, 6)
    assert torch.equal(again(x), h(x))
    assert step_scores(again, [x])[0] == pytest.approx(torch.sigmoid(h(x)).mean(0).tolist())


@pytest.mark.parametrize("text, expected", [
    ("<analysis_1>ok</analysis_1><conclusion>Correct</conclusion>", -1),
    ("<analysis_1>ok</analysis_1><analysis_2>wrong: 3+4=8</analysis_2><conclusion>Incorrect</conclusion>", 1),
    ("<analysis_1>fine <analysis_2>bad\n<conclusion> incorrect </conclusion>", 1),  # unclosed tags, spacing, case
    ("<analysis_1>ok</analysis_1>", None),  # no conclusion: dropped
    ("<conclusion>Incorrect</conclusion>", None),  # incorrect but no paragraph named
    ("<analysis_7>?</analysis_7><conclusion>Incorrect</conclusion>", None),  # outside the 3-step solution
    ("<conclusion>maybe</conclusion>", None),
    ("", None),
])
def test_critique_parsing_is_robust(text, expected):
    assert parse_critique(text, 3) == expected


class CritiqueEngine:
    name, stats = "scripted-critic", GenerationStats()

    def __init__(self, texts):
        self.texts, self.prompts = texts, []

    def generate(self, prompts, spec):
        self.prompts += prompts
        return [[Sample(text=t, token_ids=[1] * 7, finish_reason="stop")] for t in self.texts[: len(prompts)]]


def test_judges_label_first_errors_and_count_their_cost():
    d = ArithDomain()
    problem = next(iter(d.problems(1, seed=3)))
    good = d.split_steps(d.reference_solution(problem))
    bad = good[:-1] + ["Answer: -12345"]
    trajs = [Trajectory("g", problem, good), Trajectory("b", problem, bad)]
    exact = ExactJudge(d)
    assert exact.first_errors(trajs) == [-1, len(good) - 1] and exact.cost.calls == 2
    assert hard_labels(-1, 3) == [1.0, 1.0, 1.0] and hard_labels(1, 3) == [1.0, 0.0]
    critic = CritiqueJudge(CritiqueEngine(["<analysis_1>ok</analysis_1><conclusion>Correct</conclusion>", "garbled"]))
    assert critic.first_errors(trajs) == [-1, None]
    assert critic.cost.tokens == 14 and critic.cost.dropped == 1
    assert "<paragraph_1>" in critic.engine.prompts[0] and problem.question in critic.engine.prompts[0]
    assert critique_prompt("q", ["a", "b"]).count("<paragraph_") == 2
    script = {problem.question: (problem.answer, [1.0] * (len(good) - 1) + [0.0])}
    mc = MCJudge(d, ScriptedEngine(script), SamplingSpec(temperature=0.7, max_new_tokens=16), k=4)
    assert mc.first_errors(trajs) == [-1, len(good) - 1]
    assert mc.cost.tokens > 0  # rollouts only on the wrong response, up to its first zero
