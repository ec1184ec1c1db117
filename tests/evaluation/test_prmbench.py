"""PRMBench: loading with clear errors, PRMScore on hand-made cases, and the scoring path on a tiny PRM."""

import json

import polars as pl
import pytest

from prm_core.evaluation.benchmark_scores import per_sample
from prm_core.evaluation.prmbench import load_prmbench, prmscore, prmscore_of
from tests.conftest import SHARED_DATA

SUBSET = SHARED_DATA / "prmbench" / "subset400.jsonl"


def row(idx, steps, errors, cls="counterfactual"):
    return {"idx": idx, "question": f"q{idx}", "modified_process": steps, "error_steps": errors, "classification": cls}


def test_prmscore_averages_the_f1_of_correct_and_erroneous_steps():
    # 3 correct steps judged correct, 1 correct judged wrong, 1 error caught, 1 error missed
    pairs = [(True, True)] * 3 + [(False, True), (False, False), (True, False)]
    r = prmscore_of(pairs)
    assert r["f1_correct"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert r["f1_error"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert r["prmscore"] == pytest.approx((r["f1_correct"] + r["f1_error"]) / 2)


def test_prmscore_by_category_and_unscored_steps(tmp_path):
    f = tmp_path / "subset400.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [row("a", ["s1", "s2", "s3"], [2]), row("b", ["s1", "s2"], [], "circular")]))
    frame = load_prmbench(f)
    assert frame["error_steps"].to_list() == [[1], []] and frame["category"].to_list() == ["soundness", "simplicity"]
    table = prmscore(frame, [[0.9, 0.1, 0.8], [0.9]])  # b's second step was not scored (past max length)
    overall = table.filter(pl.col("level") == "overall").row(0, named=True)
    assert overall["samples"] == 2 and overall["steps"] == 4 and overall["unscored_steps"] == 1
    assert overall["f1_error"] == 1.0 and overall["f1_correct"] == 1.0
    assert set(table.filter(pl.col("level") == "category")["group"]) == {"soundness", "simplicity"}


def test_malformed_rows_name_file_and_line_and_out_of_range_errors_stay_visible(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(row("a", ["s1"], [1])) + "\n" + json.dumps(row("b", ["s1"], [0])) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: error_steps \[0\] are 1-based"):
        load_prmbench(f)
    f.write_text(json.dumps(row("a", ["s1", "s2"], [2, 3])) + "\n")  # PRMBench's own quirk: a step past the end
    frame = load_prmbench(f)
    assert frame["error_steps"].to_list() == [[1]] and frame["out_of_range_errors"].to_list() == [[3]]
    f.write_text('{"idx": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: lacks"):
        load_prmbench(f)


@pytest.mark.skipif(not SUBSET.exists(), reason="shared data not present")
def test_the_real_subset_is_scored_by_a_tiny_prm(tiny_policy):
    from transformers import AutoTokenizer

    from prm_core.prm.discriminative import init_prm, score_steps

    frame = load_prmbench(SUBSET)
    assert frame.height == 394 and set(frame["category"]) == {"simplicity", "soundness", "sensitivity"}
    head = frame.head(6)
    tok = AutoTokenizer.from_pretrained(tiny_policy)
    scores = score_steps(init_prm(tiny_policy, tok, "\n"), tok, head["prompt"].to_list(), head["steps"].to_list(), "\n")
    table = prmscore(head, scores)
    overall = table.filter(pl.col("level") == "overall").row(0, named=True)
    assert overall["samples"] == 6 and 0.0 <= overall["prmscore"] <= 1.0
    assert overall["steps"] + overall["unscored_steps"] == int(head["steps"].list.len().sum())
    assert per_sample(head, scores, 0.5)["step_scores"].to_list() == scores
