"""The frontier's arithmetic: what each method's all-in cost counts, what a budget buys, and when the pool caps it."""

import pytest

from prm_core.compare.frontier import (
    FrontierResult,
    MethodCost,
    Point,
    Tokens,
    budgets_of,
    method_costs,
    plan_points,
    problems_wanted,
)
from prm_core.evaluation.flops import forward_flops, generation_flops, training_flops

P, B = 1_000, 3_000  # policy and backbone parameters


def tokens(n: int = 4) -> Tokens:
    problems = tuple(f"p{i}" for i in range(n))
    return Tokens(problems, {p: 100 for p in problems},
                  {"vanilla": {p: 1_000 for p in problems}, "scan": {p: 10 for p in problems}},
                  {"vanilla": {p: 200 for p in problems}, "scan": {p: 50 for p in problems}, "oracle": {p: 200 for p in problems}},
                  {p: 300 for p in problems}, {p: 900 for p in problems}, {"vanilla": 7_000}, backbone_train_tokens=5_000, policy_params=P, backbone_params=B)


def test_each_method_pays_the_terms_its_recipe_spends():
    c = method_costs(tokens())
    fixed = training_flops(5_000, B)
    assert c["vanilla"].fixed == c["scan"].fixed == c["oracle"].fixed == c["actprm"].fixed == fixed
    assert c["implicit_ce"].fixed == c["implicit_dpo"].fixed == 0.0  # θ starts from the policy: no backbone
    gen = generation_flops(100, P)
    assert c["vanilla"].per_problem[0] == gen + generation_flops(1_000, P) + forward_flops(200, B)
    assert c["scan"].per_problem[0] == gen + generation_flops(10, P) + forward_flops(50, B)
    assert c["oracle"].per_problem[0] == gen + forward_flops(200, B)  # exact labels: no rollouts
    assert c["scan_binary"].per_problem[0] == gen  # no rollouts and no corpus recorded for it here
    assert c["actprm"].per_problem[0] == gen + forward_flops(300, B)  # the whole pool forwarded; the exact judge is free
    assert c["implicit_ce"].per_problem[0] == gen + training_flops(300, P) + forward_flops(300, P)
    assert c["implicit_dpo"].per_problem[0] == gen + training_flops(900, P) + forward_flops(300, P)  # pairs: both sides
    # the stock classifier fine-tuned whole: its training is fixed by its steps, no frozen forward per problem
    assert c["vanilla_stock"].fixed == fixed + training_flops(7_000, B)
    assert c["vanilla_stock"].per_problem[0] == gen + generation_flops(1_000, P)


def test_a_budget_buys_the_longest_prefix_that_fits_and_the_pool_caps_it():
    c = MethodCost("m", 10.0, (5.0, 5.0, 5.0))
    assert [c.affordable(b) for b in (9.0, 10.0, 14.9, 15.0, 25.0, 1e9)] == [0, 0, 0, 1, 3, 3]
    assert c.total(2) == 20.0 and c.total(0) == 10.0
    assert c.wanted(24.0) == 2  # the pool is not exhausted: what it bought
    assert c.wanted(45.0) == 7  # 3 bought for 25, then 20 more at the mean 5 a problem
    assert MethodCost("m", 0.0, ()).wanted(100.0) == 0


def test_budgets_are_vanillas_cost_and_cheaper_methods_buy_more_problems():
    costs = method_costs(tokens(4))
    budgets = budgets_of(costs["vanilla"], (1, 2))
    assert budgets == {"b1": costs["vanilla"].total(1), "b2": costs["vanilla"].total(2)}
    points = plan_points(costs, budgets, ("vanilla", "scan"))
    by = {(p.method, p.budget): p for p in points}
    assert by["vanilla", "b1"].problems == 1 and not by["vanilla", "b1"].capped
    assert by["vanilla", "b2"].flops == budgets["b2"]
    scan = by["scan", "b1"]
    assert scan.problems == 4 and scan.capped and scan.problems_wanted > 4 and scan.flops <= budgets["b1"]
    assert problems_wanted(points) == by["scan", "b2"].problems_wanted > scan.problems_wanted


def test_summary_keys_follow_the_issue_contract():
    point = Point("scan", "b40", 1e12, 120, 9e11, False, 120)
    row = {**vars(point), "responses": 960, "f1": 0.8, "f1_se": 0.01, "bon": 0.75, "bon_se": 0.02}
    pair = {"budget": "b40", "a": "vanilla", "b": "scan", "bon_diff": 0.01, "bon_diff_se": 0.004, "bon_separable": True}
    s = FrontierResult([row], [pair]).summary()
    assert {k: s[f"frontier.scan.b40.{k}"] for k in ("f1", "bon", "flops", "responses")} == \
        {"f1": 0.8, "bon": 0.75, "flops": 9e11, "responses": 960}
    assert s["frontier.scan.b40.capped"] is False
    assert s["frontier.paired.b40.vanilla_vs_scan.bon_diff_se"] == pytest.approx(0.004)


def test_pair_tokens_count_both_sides_of_every_correct_incorrect_pair():
    import polars as pl

    from prm_core.compare.points import _by_problem, _pair_tokens

    roll = pl.DataFrame({"problem_id": ["p", "p", "p", "q", "q"], "correct": [True, True, False, True, True]})
    tokens = [1, 2, 10, 5, 6]
    assert _pair_tokens(roll, tokens) == {"p": (1 + 10) + (2 + 10), "q": 0}  # q has no incorrect response: no pair
    assert _by_problem(roll, tokens) == {"p": 13, "q": 11}
