"""One PRM on every benchmark through `score_prm` (any scorer), and the comparison summary, on hand-made sets."""

import polars as pl
import pytest

from prm_core.evaluation.benchmark_scores import comparison_summary, score_prm

# step scores by hand: a step whose text says "bad" scores 0.1, every other one 0.9
PB = pl.DataFrame({"prompt": ["q"] * 4, "steps": [["ok", "bad"], ["ok", "ok"], ["bad"], ["ok"]],
                   "split": ["dev", "dev", "test", "test"], "label": [1, -1, 0, -1]})
BON = pl.DataFrame({"problem_id": ["a", "a", "b", "b"], "sample_index": [0, 1, 0, 1], "prompt": ["q"] * 4,
                    "steps": [["bad"], ["ok"], ["ok"], ["ok", "bad"]], "predicted_answer": ["1", "2", "3", "4"],
                    "correct": [False, True, True, False], "greedy_correct": [False, False, True, True]})
REAL = pl.DataFrame({"prompt": ["q"] * 4, "steps": [["ok", "bad"], ["ok"], ["bad"], ["ok"]],
                     "split": ["gsm8k", "gsm8k", "math", "math"], "label": [1, -1, 0, -1]})


def scorer(prompts, steps):
    return [[0.1 if s == "bad" else 0.9 for s in row] for row in steps]


def test_score_prm_on_the_testbed_sets_and_the_real_processbench():
    r = score_prm("scan", scorer, PB, BON, real=REAL)
    assert r.row["prm"] == "scan" and r.row["f1"] == 1.0 and r.row["prm_min"] == 1.0
    assert r.row["real_avg_f1"] == 1.0 and set(r.samples) == {"processbench", "bon", "processbench_real"}
    assert r.samples["processbench"]["prediction"].to_list() == [1, -1, 0, -1]
    assert r.real["threshold"].to_list() == ["gsm8k_tau", "gsm8k_tau", "tau05", "tau05"] and r.prmbench is None
    assert list(r.summary) == ["processbench.real.avg_f1.scan", "processbench.real.rows", "prm.scan.f1", "prm.scan.f1_tau05",
                               "prm.scan.tau", "prm.scan.pair_order", "bon.prm_min.scan", "bon.prm_min_vote.scan",
                               "bon.prm_last.scan"]
    alone = score_prm("vanilla", scorer, real=REAL)  # real data: no testbed sets
    assert "f1" not in alone.row and list(alone.samples) == ["processbench_real"]
    assert not any(k.startswith("prm.") for k in alone.summary)


def test_comparison_summary_takes_the_baselines_of_the_first_row_and_scan_against_oracle_and_vanilla():
    base = {"majority": 0.5, "pass_at_n": 0.9, "first": 0.4, "greedy": 0.45, "n_problems": 10, "n": 4}
    rows = [{"prm": "scan", "f1": 0.6, "prm_min_stderr": 0.02, **base},
            {"prm": "oracle", "f1": 0.8, "prm_min_stderr": 0.05},
            {"prm": "vanilla", "f1": 0.5, "prm_min_stderr": None}]
    s = comparison_summary(rows)
    assert s["bon.majority"] == 0.5 and s["bon.pass_at_1"] == 0.4 and s["bon.n"] == 4 and s["bon.stderr"] == 0.05
    assert s["prm.scan_over_oracle_f1"] == pytest.approx(0.75) and s["prm.scan_minus_vanilla_f1"] == pytest.approx(0.1)
    assert "prm.scan_over_oracle_f1" not in comparison_summary([rows[0]])
