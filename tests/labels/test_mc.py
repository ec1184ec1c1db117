"""MC values, first-error search, SCAN's soft labels and the label audit, on hand-made cases."""

import polars as pl
import pytest

from prm_core.labels.audit import first_error_accuracy, response_predictions, step_confusion
from prm_core.labels.denoised_labels import LabelConfig, build_labels
from prm_core.labels.first_error import search_binary, search_sequential, value_all_steps
from prm_core.labels.mc_estimates import AnnotationConfig, annotate
from prm_core.labels.mc_value import Response
from prm_core.labels.soft_label import scan_soft_labels
from tests.scripted import ScriptedEngine
from tests.support.labels import SPEC, D, response, scripted_set

def test_scan_soft_labels_match_the_paper_examples():
    # dataset/SCAN-Base row [1, 0.667, 0]: c = [1, 0.5, 0], SC = 0.75, d = 2
    assert scan_soft_labels([1.0, 0.5, 0.0], 2, 0.75, 2) == pytest.approx([1.0, 0.5 / 0.75, 0.0])
    # steps further than d before t_e get the hard label 1[c_t > 0]
    assert scan_soft_labels([0.25, 0.5, 0.25, 0.0], 3, 0.75, 2) == pytest.approx([1.0, 0.5 / 0.75, 0.25 / 0.75, 0.0])
    # unvisited steps before the window (binary search) count as c_t > 0; SC = 0 never divides by zero
    assert scan_soft_labels([None, 0.5, 0.5, 0.0], 3, 0.8, 2) == pytest.approx([1.0, 0.625, 0.625, 0.0])
    assert scan_soft_labels([0.5, 0.0], 1, 0.0, 2) == [0.0, 0.0]
    # inside the window a missing c_t is an error, never a silent 1.0
    with pytest.raises(ValueError, match="soft-label window"):
        scan_soft_labels([1.0, None, 0.0], 2, 0.8, 2)


def test_sequential_stops_at_the_first_zero_and_binary_finds_it_cheaper():
    q = "Tom has 1 pens. How many now?"
    engine = ScriptedEngine({q: ("5", [1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])})
    r = response("p/r0", q, 7, correct=False)
    seq, c_seq = search_sequential(D, engine, [r], 8, SPEC)
    assert seq[0].first_zero == 2 and seq[0].values[:3] == [1.0, 0.5, 0.0] and seq[0].values[3:] == [None] * 4
    assert c_seq.rollouts == 3 * 8
    binary, c_bin = search_binary(D, engine, [r], 8, SPEC)
    assert binary[0].first_zero == 2 and c_bin.rollouts < c_seq.rollouts + 8
    van, c_van = value_all_steps(D, engine, [r], 8, SPEC)
    assert van[0].first_zero == 2 and c_van.rollouts == 6 * 8  # the answer step is the grade: no rollouts


def test_binary_search_values_the_soft_window_so_its_labels_match_sequential_scan():
    q = "Tom has 5 pens. How many now?"
    # c = [1, 1, 0.75, 0.5, 0, 0, 0]: the first zero is step 4; d = 2 needs c_2 and c_3
    engine = ScriptedEngine({q: ("5", [1.0, 1.0, 0.75, 0.5, 0.0, 0.0, 0.0])})
    r = response("p/r0", q, 7, correct=False)
    steps = {r.response_id: r.steps}
    labels = {}
    for method in ("scan", "scan_binary"):
        mc, cost = annotate(method, D, engine, [r], {"p": 0.875}, AnnotationConfig(k=8, d=2), SPEC)
        assert mc["rollouts"].sum() == cost.rollouts and mc["soft_window"].unique().to_list() == [2]
        labels[method] = build_labels(mc.with_columns(shard=pl.lit("s")), steps, LabelConfig(balance=False))[0]
    seq, binary = (labels[m].row(0, named=True) for m in ("scan", "scan_binary"))
    assert seq["predicted_error"] == binary["predicted_error"] == 4
    assert seq["labels"] == pytest.approx([1.0, 1.0, 0.75 / 0.875, 0.5 / 0.875, 0.0])
    assert binary["labels"] == pytest.approx(seq["labels"])


def test_a_zero_inside_the_window_moves_the_binary_error_earlier():
    q = "Sam has 5 pens. How many now?"
    # recovery: c = [0.5, 0, 0.5, 0.5, 0, 0]. Binary search visits 2 (0.5), 4 (0), 3 (0.5) and stops at 4; with
    # d = 3 the window round values c_1 = 0, so t_e moves to 1 and the next round values its window (c_0)
    engine = ScriptedEngine({q: ("5", [0.5, 0.0, 0.5, 0.5, 0.0, 0.0])})
    r = response("p/r0", q, 6, correct=False)
    binary, cost = annotate("scan_binary", D, engine, [r], {"p": 1.0}, AnnotationConfig(k=8, d=3), SPEC)
    seq, _ = annotate("scan", D, engine, [r], {"p": 1.0}, AnnotationConfig(k=8, d=3), SPEC)
    assert binary["predicted_error"][0] == seq["predicted_error"][0] == 1
    assert binary["mc_value"].to_list() == [0.5, 0.0, 0.5, 0.5, 0.0, 0.0]
    assert cost.rollouts == 5 * 8  # steps 2, 4, 3, then 1, then 0 (the last step is the grade)


def test_one_step_response_needs_no_rollouts():
    q = "Tom has 2 pens. How many now?"
    engine = ScriptedEngine({q: ("5", [0.0])})
    r = response("p/r0", q, 1, correct=False)
    for search in (search_sequential, search_binary, value_all_steps):
        (sv,), cost = search(D, engine, [r], 8, SPEC)
        assert sv.first_zero == 0 and cost.rollouts == 0


def test_recovery_makes_a_response_have_no_zero_and_scan_drops_it():
    q = "Tom has 3 pens. How many now?"
    # an incorrect response whose answer step is wrong, yet every earlier prefix recovers
    engine = ScriptedEngine({q: ("5", [0.5, 0.5, 0.0])})
    r = response("p/r0", q, 3, correct=False)
    mc, _ = annotate("scan", D, engine, [r], {"p": 1.0}, AnnotationConfig(), SPEC)
    assert mc["predicted_error"].unique().to_list() == [2]
    # a correct-looking final answer can never be the first zero; with c_last > 0 nothing is found
    r_ok = Response("p/r1", r.problem, r.steps, True)
    mc2, cost = annotate("scan", D, engine, [r_ok], {"p": 1.0}, AnnotationConfig(), SPEC)
    assert cost.rollouts == 0 and mc2["mc_value"].null_count() == 3


def test_scan_rolls_out_the_last_step_as_its_code_does_so_no_zero_drops_a_recovering_response():
    q = "Tom has 6 pens. How many now?"
    # every prefix, the whole wrong response included, still leads to the right answer half of the time
    engine = ScriptedEngine({q: ("5", [0.5, 0.5, 0.5])})
    r = response("p/r0", q, 3, correct=False)
    mc, cost = annotate("scan", D, engine, [r], {"p": 1.0}, AnnotationConfig(k=8), SPEC)
    assert mc["predicted_error"].unique().to_list() == [-1] and cost.rollouts == 3 * 8  # the last step rolled out
    labels, counts = build_labels(mc.with_columns(shard=pl.lit("s")), {r.response_id: r.steps}, LabelConfig(balance=False))
    assert labels.is_empty() and counts["dropped_no_zero"] == 1
    # off: the last step's value is the response's grade (0), so the error is placed there without rollouts
    mc, cost = annotate("scan", D, engine, [r], {"p": 1.0}, AnnotationConfig(k=8, scan_rollout_last=False), SPEC)
    assert mc["predicted_error"].unique().to_list() == [2] and cost.rollouts == 2 * 8
    # binary search and vanilla take the grade as c_T either way (binary search bounds its search by it)
    assert annotate("scan_binary", D, engine, [r], {"p": 1.0}, AnnotationConfig(k=8), SPEC)[0]["predicted_error"][0] == 2


def test_scan_covers_confident_questions_and_rolls_out_only_incorrect_responses():
    engine, responses, sc = scripted_set()
    mc, cost = annotate("scan", D, engine, responses, sc, AnnotationConfig(k=8, sc_threshold=0.75), SPEC)
    assert set(mc["response_id"]) == {"a/r0", "a/r1"}
    assert {q for q, _ in engine.calls} == {"Tom has 4 pens. How many now?"}
    assert cost.rollouts == 8 * 3 and mc["rollouts"].sum() == cost.rollouts  # t = 0, 1, 2 (first zero)
    van, vcost = annotate("vanilla", D, engine, responses, sc, AnnotationConfig(k=8), SPEC)
    assert set(van["response_id"]) == {r.response_id for r in responses} and vcost.rollouts == 4 * 3 * 8


def test_labels_of_both_methods_share_one_schema():
    engine, responses, sc = scripted_set()
    steps = {r.response_id: r.steps for r in responses}
    mc, _ = annotate("scan", D, engine, responses, sc, AnnotationConfig(), SPEC)
    labels, counts = build_labels(mc.with_columns(shard=pl.lit("s")), steps, LabelConfig(balance=True))
    assert counts == {"responses": 2, "dropped_no_zero": 0, "balanced_away": 0, "positives": 1, "negatives": 1}
    neg = labels.filter(~pl.col("is_positive")).row(0, named=True)
    assert neg["labels"] == pytest.approx([1.0, 0.5, 0.0]) and len(neg["steps"]) == 3  # steps after t_e removed
    assert neg["hard_labels"] == [1, 1, 0]
    van, _ = annotate("vanilla", D, engine, responses, sc, AnnotationConfig(), SPEC)
    vlabels, _ = build_labels(van.with_columns(shard=pl.lit("s")), steps, LabelConfig())
    assert vlabels.schema == labels.schema and vlabels.height == 4
    b = vlabels.filter(pl.col("response_id") == "b/r0").row(0, named=True)
    assert b["labels"] == [0.25, 0.0, 0.0, 0.0] and b["predicted_error"] == 1


def test_balancing_is_seeded_and_one_to_one():
    q = "Tom has 4 pens. How many now?"
    engine = ScriptedEngine({q: ("5", [1.0, 0.0, 0.0])})
    responses = [response(f"a/r{i}", q, 3, i < 5) for i in range(7)]  # 5 positives, 2 negatives
    steps = {r.response_id: r.steps for r in responses}
    mc, _ = annotate("scan", D, engine, responses, {"a": 1.0}, AnnotationConfig(), SPEC)
    mc = mc.with_columns(shard=pl.lit("s"))
    a, ca = build_labels(mc, steps, LabelConfig(seed=1), key="s")
    b, _ = build_labels(mc, steps, LabelConfig(seed=1), key="s")
    assert a.equals(b) and ca["positives"] == ca["negatives"] == 2 and ca["balanced_away"] == 3
    unbalanced, cu = build_labels(mc, steps, LabelConfig(balance=False))
    assert unbalanced.height == 7


def test_audit_numbers_on_a_case_with_known_truth():
    engine, responses, sc = scripted_set()
    van, _ = annotate("vanilla", D, engine, responses, sc, AnnotationConfig(), SPEC)
    scan, _ = annotate("scan", D, engine, responses, sc, AnnotationConfig(), SPEC)
    mc = pl.concat([van, scan])
    # truth: a/r0 correct (vanilla, from the shared script, says 2: under); a/r1 first error at 2 (right);
    # b/r0 at 2 (vanilla says 1: under); c/r0 at 0 (right)
    truth = pl.DataFrame({"response_id": ["a/r0", "a/r1", "b/r0", "c/r0"], "first_error": [-1, 2, 2, 0]})
    fe = first_error_accuracy(mc, truth)
    v = fe.filter((pl.col("method") == "vanilla") & (pl.col("bucket") == "all")).row(0, named=True)
    assert v["responses"] == 4 and v["first_error_acc"] == 0.5 and v["under_rate"] == 0.5 and v["over_rate"] == 0
    s = fe.filter((pl.col("method") == "scan") & (pl.col("bucket") == "all")).row(0, named=True)
    assert s["responses"] == 2 and s["first_error_acc"] == 1.0 and s["noise_ratio"] == 0
    low = fe.filter((pl.col("method") == "vanilla") & (pl.col("bucket") == "low")).row(0, named=True)
    assert low["responses"] == 1 and low["first_error_acc"] == 1.0
    conf = step_confusion(mc, truth).filter((pl.col("method") == "vanilla") & (pl.col("bucket") == "all")).row(0, named=True)
    # a/r0 step 2 and b/r0 step 1: truly correct prefixes judged wrong (fn); everything else agrees
    assert (conf["tp"], conf["fp"], conf["tn"], conf["fn"]) == (6, 0, 8, 2)
    preds = response_predictions(mc)
    assert preds.filter(pl.col("method") == "scan")["predicted_error"].to_list() == [-1, 2]


def test_unknown_method_is_rejected():
    engine, responses, sc = scripted_set()
    with pytest.raises(ValueError, match="unknown MC method"):
        annotate("omega", D, engine, responses, sc, AnnotationConfig(), SPEC)


def test_all_in_cost_adds_fresh_self_confidence_samples_to_scan_only():
    from prm_core.labels.audit import cost_table

    costs = {"vanilla": {"rollouts": 80, "tokens": 1000}, "scan": {"rollouts": 8, "tokens": 30},
             "scan_binary": {"rollouts": 8, "tokens": 20}}
    free = {r["method"]: r for r in cost_table(costs).to_dicts()}  # SC from the rollouts: all-in = rollouts
    assert free["scan"]["all_in_ratio_vs_vanilla"] == free["scan"]["token_ratio_vs_vanilla"] == 0.03
    fresh = {r["method"]: r for r in cost_table(costs, sc_tokens=50).to_dicts()}
    assert fresh["scan"]["all_in_tokens"] == 80 and fresh["scan"]["all_in_ratio_vs_vanilla"] == 0.08
    assert fresh["scan_binary"]["all_in_ratio_vs_vanilla"] == 0.07 and fresh["vanilla"]["all_in_ratio_vs_vanilla"] == 1.0
