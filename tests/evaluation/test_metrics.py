"""ProcessBench F1 (official rule) and best-of-N selection on hand-made cases."""

import pytest

from prm_core.evaluation.best_of_n import Candidate, best_of_n, select
from prm_core.evaluation.processbench import choose_threshold, f1_at, f1_score, predict_first_error


def test_prediction_is_the_first_step_below_tau():
    assert predict_first_error([0.9, 0.4, 0.2], 0.5) == 1
    assert predict_first_error([0.9, 0.8], 0.5) == -1
    assert predict_first_error([], 0.5) == -1


def test_f1_all_correct_all_erroneous_and_empty():
    # all-correct split: acc_err undefined -> 0, so F1 is 0 whatever the predictions
    assert f1_score([-1, -1], [-1, -1]).f1 == 0.0 and f1_score([-1, -1], [-1, -1]).acc_cor == 1.0
    # all-erroneous split: the exact index must match
    r = f1_score([1, 2, -1], [1, 0, 2])
    assert r.acc_err == pytest.approx(1 / 3) and r.f1 == 0.0
    assert f1_score([], []).f1 == 0.0


def test_f1_is_the_harmonic_mean_of_the_two_accuracies():
    preds, labels = [0, 1, -1, -1, 2], [0, 2, -1, -1, -1]
    r = f1_score(preds, labels)
    assert (r.acc_err, r.acc_cor) == (0.5, pytest.approx(2 / 3))
    assert r.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_threshold_is_chosen_on_dev_only():
    dev_scores, dev_labels = [[0.9, 0.3], [0.9, 0.8]], [1, -1]
    test_scores, test_labels = [[0.9, 0.6], [0.9, 0.95]], [1, -1]
    tau = choose_threshold(dev_scores, dev_labels)
    assert f1_at(dev_scores, dev_labels, tau).f1 == 1.0 and 0.3 < tau <= 0.8
    # the test split would prefer another τ, but the choice never looked at it
    assert choose_threshold(test_scores, test_labels) != tau or f1_at(test_scores, test_labels, tau).f1 < 1.0


def test_best_of_n_methods():
    cands = [Candidate("3", False, (0.9, 0.2)), Candidate("5", True, (0.6, 0.7)), Candidate("3", False, (0.3, 0.9))]
    assert select(cands, "majority") is False
    assert select(cands, "prm_min") is True
    assert select(cands, "prm_last") is False
    assert select(cands, "pass_at_n") is True
    assert select(cands, "prm_min_vote") is True  # 0.6 for "5" against 0.2 + 0.3 for "3"
    ties = [Candidate("1", True, (0.5,)), Candidate("2", False, (0.5,))]
    assert select(ties, "prm_min") is True  # ties go to the first response
    res = best_of_n([cands, ties], "prm_min")
    assert res.accuracy == 1.0 and res.n_problems == 2 and res.stderr == 0.0
    with pytest.raises(ValueError):
        select(cands, "oracle")


def test_benchmark_f1_applies_the_dev_threshold_to_test():
    """Dev wants τ ≈ 0.35, test would want τ ≈ 0.75: the reported test F1 uses dev's τ."""
    import polars as pl

    from prm_core.evaluation.benchmark_scores import processbench_scores

    frame = pl.DataFrame({"split": ["dev", "dev", "test", "test"], "label": [0, -1, 0, -1]})
    scores = [[0.3], [0.4], [0.7], [0.8]]
    out = processbench_scores(frame, scores)
    assert 0.3 < out["tau"] <= 0.4 and out["dev_f1"] == 1.0
    assert out["f1"] == 0.0  # at dev's τ the test error (0.7) is not caught
    assert out["f1_tau05"] == 0.0
