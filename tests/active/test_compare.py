"""ActPRM's comparison: thresholds chosen on dev (never on test) at seed 0 and kept for the other seeds, mean ± s.e.,
the selection audit, and the whole experiment on a hand-made pool."""

import polars as pl
import pytest
import torch

from prm_core.active.compare import (
    CompareConfig,
    SeedResult,
    compare_seed,
    compare_seeds,
    comparison_points,
    comparison_summary,
    error_rate,
    run_comparison,
    selection_rows,
)
from prm_core.active.features import Pool
from prm_core.active.judges import ExactJudge
from prm_core.active.pool import Decision
from prm_core.active.uncertainty import Uncertainty
from tests.support.active import arith_pool

# δ_pred 0 selects nothing (every confidence ≥ 0.5 > 0), δ_pred 1.01 everything; δ_std 2 never triggers
NONE, ALL = 0.0, 1.01
GRID = CompareConfig(heads=3, batch_size=2, grid_pred=(NONE, ALL), grid_std=(2.0,), dev_tolerance=0.01)


class Scripted:
    """`evaluate` by call order: compare_seed scores full data in one pass, then each grid point in order, then random
    and full data at the active pass's optimizer steps."""

    def __init__(self, rows):
        self.rows, self.calls = list(rows), 0

    def __call__(self, heads):
        self.calls += 1
        return self.rows.pop(0)


def row(dev, test):
    return {"dev_f1": dev, "f1": test}


def test_thresholds_are_chosen_on_dev_never_on_test():
    d, trajs, x = arith_pool()
    # the no-label point is best on test but 0.3 below full data on dev: the all-label point is chosen
    evaluate = Scripted([row(0.8, 0.5), row(0.5, 0.99), row(0.8, 0.6), row(0.1, 0.4), row(0.7, 0.7)])
    r = compare_seed(x, trajs, lambda: ExactJudge(d), evaluate, GRID, seed=0)
    assert (r.delta_pred, r.delta_std) == (ALL, 2.0) and r.labels == len(trajs) == r.pool
    assert r.active["f1"] == 0.6 and r.random["f1"] == 0.4 and r.full["f1"] == 0.7 and r.full_one_pass["f1"] == 0.5
    # within the tolerance on dev: the fewest labels win
    evaluate = Scripted([row(0.8, 0.5), row(0.795, 0.1), row(0.9, 0.9), row(0.1, 0.4), row(0.7, 0.7)])
    r = compare_seed(x, trajs, lambda: ExactJudge(d), evaluate, GRID, seed=0)
    assert (r.delta_pred, r.labels, r.active["f1"], r.steps) == (NONE, 0, 0.1, 0)
    # none within the tolerance: the best dev F1 (the fewest labels would pick the no-label model, dev F1 0.2)
    evaluate = Scripted([row(0.9, 0.5), row(0.2, 0.1), row(0.3, 0.9), row(0.1, 0.4), row(0.7, 0.7)])
    assert compare_seed(x, trajs, lambda: ExactJudge(d), evaluate, GRID, seed=0).delta_pred == ALL


def test_random_and_full_data_take_as_many_optimizer_steps_as_the_active_pass(monkeypatch):
    import prm_core.active.pool as pool

    d, trajs, x = arith_pool()
    taken = []
    real = pool.train_on
    monkeypatch.setattr(pool, "train_on", lambda *a, **k: taken.append((len(a[2]), k["steps"])) or real(*a, **k))
    cfg = CompareConfig(heads=3, batch_size=2, grid_pred=(ALL,), grid_std=(2.0,))
    r = compare_seed(x, trajs, lambda: ExactJudge(d), lambda heads: row(0.5, 0.5), cfg, seed=0)
    assert r.steps == -(-len(trajs) // 2) and r.labels == len(trajs)  # every batch labelled: one step each
    assert taken == [(len(trajs), r.steps), (len(trajs), r.steps)]  # random (here all of the pool), then full data


def test_seed_zero_chooses_the_thresholds_and_the_other_seeds_keep_them():
    d, trajs, x = arith_pool()
    evaluate = Scripted([row(0.8, 0.5), row(0.5, 0.99), row(0.8, 0.6), row(0.1, 0.4), row(0.7, 0.7)]  # seed 0: the grid
                        + [row(0.7, 0.5), row(0.0, 0.0), row(0.1, 0.3), row(0.7, 0.7)] * 2)  # seeds 1, 2: the kept point
    seen = []
    results = compare_seeds(x, trajs, lambda: ExactJudge(d), evaluate, GRID, seeds=3, on_seed=seen.append)
    assert [r.seed for r in results] == [0, 1, 2] and seen == results and evaluate.calls == 5 + 4 + 4
    assert all((r.delta_pred, r.delta_std) == (ALL, 2.0) for r in results)  # kept though seed 1's dev F1 is 0


def test_error_rates():
    truth = {"a": -1, "b": 2, "c": 0}
    assert error_rate(["a", "b", "c"], truth) == pytest.approx(2 / 3) and error_rate([], truth) == 0.0


def seed_result(seed, f1s, labels, decisions=()):
    full, active, rnd = ({"f1": v, "dev_f1": v} for v in f1s)
    return SeedResult(seed, 0.8, 0.05, full, active, rnd, labels, 4, list(decisions), heads=None)


def test_summary_selection_rows_and_points_on_hand_made_results():
    unc = Uncertainty(True, False, True, 1, 0.2, 0.7)
    decisions = [Decision("a", 0, unc, True, 1), Decision("b", 0, unc, False, None), Decision("c", 1, unc, True, -1),
                 Decision("d", 1, unc, False, None)]
    truth = {"a": 1, "b": 0, "c": -1, "d": -1}
    results = [seed_result(0, (0.5, 0.6, 0.4), 2, decisions), seed_result(1, (0.7, 0.8, 0.2), 3)]
    s = comparison_summary(results, truth, bon=0.9, judge_tokens=7)
    assert list(s) == ["f1", "f1_se", "labels_used", "label_fraction", "full_data_f1", "random_f1", "random_f1_se",
                       "active_minus_random_f1", "active_minus_random_f1_se", "optimizer_steps", "matched", "bon",
                       "judge_tokens", "seeds", "delta_pred", "delta_std", "selected_error_rate", "pool_error_rate"]
    assert s["f1"] == pytest.approx(0.7) and s["f1_se"] == pytest.approx(0.1) and s["full_data_f1"] == pytest.approx(0.6)
    assert s["labels_used"] == 2.5 and s["label_fraction"] == 2.5 / 4 and s["seeds"] == 2 and s["bon"] == 0.9
    assert s["selected_error_rate"] == 0.5 and s["pool_error_rate"] == 0.5  # a of (a, c); a, b of four
    assert s["active_minus_random_f1"] == pytest.approx(0.4) and s["active_minus_random_f1_se"] == pytest.approx(0.2)
    assert "bon" not in comparison_summary(results, truth)
    rows = selection_rows(decisions, truth)
    assert [r["true_first_error"] for r in rows] == [1, 0, -1, -1] and rows[0]["epistemic"] and rows[0]["labelled"]
    assert pl.DataFrame(rows).filter(pl.col("labelled")).height == 2
    points = comparison_points(results)
    assert len(points) == 6 and points[0] == {"seed": 0, "method": "full data", "labels": 4, "steps": 0, "f1": 0.5}
    assert points[1]["labels"] == 2 and points[1]["method"] == "active"


class Features:
    """Step inputs of a benchmark set by hand: a fixed tensor per row."""

    def of(self, frame):
        return [torch.ones(len(s), 5) * i for i, s in enumerate(frame["steps"].to_list())]


def test_run_comparison_on_a_hand_made_pool_counts_judges_and_scores_bon():
    d, trajs, x = arith_pool()
    pool = Pool(["p"] * len(trajs), trajs, x)
    dev_test = pl.DataFrame({"prompt": ["q", "q"], "steps": [["a"], ["a", "b"]]})
    seen = []

    def score(frame, step_scores):
        seen.append(step_scores)
        return {"dev_f1": 0.5, "f1": 0.5}

    cfg = CompareConfig(heads=3, batch_size=2, grid_pred=(ALL,), grid_std=(2.0,))
    found = run_comparison(pool, Features(), dev_test, score, d, cfg, seeds=2,
                           bon=(dev_test, lambda frame, s: {"prm_min": 0.75, "rows": len(s)}),
                           other_judge=lambda: ExactJudge(d))
    assert len(found.results) == 2 and found.main is found.results[0] and found.bon == {"prm_min": 0.75, "rows": 2}
    assert found.truth == {t.response_id: (-1 if i % 2 == 0 else len(t.steps) - 1) for i, t in enumerate(trajs)}
    assert found.judge_tokens == 0  # the exact judge is free
    assert found.other_judge["labels"] == len(trajs) and found.other_judge["calls"] == len(trajs)
    s = found.summary()
    assert s["bon"] == 0.75 and s["pool_error_rate"] == 0.5 and s["selected_error_rate"] == 0.5
    assert list(s)[-4:] == ["mc_judge.f1", "mc_judge.labels_used", "mc_judge.tokens", "mc_judge.dropped"]
    assert all(len(v) == 2 and len(v[1]) == 2 for v in seen)  # every score on both rows, a score per step
