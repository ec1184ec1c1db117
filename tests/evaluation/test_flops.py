"""FLOPs of a PRM (data + training) and the summary's cost and efficiency keys, on hand-made numbers."""

import pytest

from prm_core.evaluation.flops import flop_summary, implicit_cost, mc_prm_cost


def test_costs_count_two_flops_per_generated_or_forward_token_and_six_per_trained_one():
    c = implicit_cost(response_tokens=10, tokens_trained=100, tokens_ref=100, params=1000)
    assert c.data == 2 * 1000 * 10 and c.training == 6 * 1000 * 100 + 2 * 1000 * 100 and c.total == c.data + c.training
    m = mc_prm_cost(response_tokens=10, rollout_tokens=90, policy_params=1000, backbone_tokens=5, feature_tokens=7,
                    backbone_params=100)
    assert m.data == 2 * 1000 * 100 and m.training == 6 * 100 * 5 + 2 * 100 * 7
    assert mc_prm_cost(10, 0, 1000, 0, 0, 100).total == 2 * 1000 * 10  # the oracle: responses only


def test_flop_summary_keys_on_hand_made_rows():
    rows = [{"prm": "vanilla", "flops": 2e12, "f1": 0.5, "prm_min": 0.8},
            {"prm": "scan", "flops": 1e12, "f1": 0.6, "prm_min": 0.9},
            {"prm": "implicit_dpo", "flops": 8e12, "f1": 0.4, "bon_ref_r": 0.6},
            {"prm": "implicit_ce", "flops": 4e12, "f1": 0.2, "bon_ref_r": 0.7},
            {"prm": "actprm", "flops": None, "f1": 0.9, "prm_min": 0.9}]  # no cost: left out
    s = flop_summary(rows)
    assert s["cost_flops.vanilla"] == 2e12 and s["cost_flops.scan"] == 1e12 and "cost_flops.implicit.ce" not in s
    assert s["efficiency.scan.f1_per_tflop"] == pytest.approx(0.6) and s["efficiency.vanilla.bon_per_tflop"] == pytest.approx(0.4)
    assert s["efficiency.implicit.ce.bon_per_tflop"] == pytest.approx(0.7 / 4)  # implicit: best-of-N w/ ref, r_k
    assert s["implicit.cost_flops"] == 4e12 and s["implicit.flops_over_vanilla"] == 2.0  # CE's, not the first one's
    assert not any("actprm" in k for k in s)
    baseline = flop_summary([{"prm": "actprm_random", "flops": 2e12, "f1": 0.8, "prm_min": None}])  # no best-of-N
    assert baseline == {"cost_flops.actprm_random": 2e12, "efficiency.actprm_random.f1_per_tflop": pytest.approx(0.4)}
    only_dpo = flop_summary([rows[2]])
    assert only_dpo["implicit.cost_flops"] == 8e12 and "implicit.flops_over_vanilla" not in only_dpo
    assert flop_summary([]) == {}
