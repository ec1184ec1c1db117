"""Paired comparisons of PRMs on the same rows: best-of-N hit differences with their paired s.e., F1 differences on
shared bootstrap draws, separability at two s.e."""

import polars as pl
import pytest

from prm_core.evaluation.paired import bon_hits, f1_draws, paired_comparisons
from prm_core.runtime.stats import bootstrap_draws, bootstrap_se, mean_se, paired_difference, separable


def test_mean_se_paired_differences_and_the_two_se_rule():
    assert mean_se([]) == (0.0, 0.0) and mean_se([2.0]) == (2.0, 0.0)
    m, se = mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx(1 / 3 ** 0.5)
    # identical except one row: the paired s.e. is small where the two accuracies' own s.e. would not be
    a, b = [1.0] * 99 + [1.0], [1.0] * 99 + [0.0]
    diff, se = paired_difference(a, b)
    assert diff == pytest.approx(0.01) and se == pytest.approx(0.01)
    assert not separable(diff, se) and separable(0.03, 0.01) and separable(0.1, 0.0) and not separable(0.0, 0.0)
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([1.0], [1.0, 0.0])


def test_bootstrap_draws_are_seeded_and_its_se_is_the_spread():
    assert bootstrap_draws(5, 3, seed=1) == bootstrap_draws(5, 3, seed=1) != bootstrap_draws(5, 3, seed=2)
    assert all(len(d) == 5 and all(0 <= i < 5 for i in d) for d in bootstrap_draws(5, 3, 0))
    assert bootstrap_se([1.0, 1.0, 1.0]) == 0.0
    assert bootstrap_se([0.0, 2.0]) == pytest.approx(2 ** 0.5)


def bon_frame(scores_by_problem):
    """Two problems, two candidates each: the first correct, the second wrong; `step_scores` as given."""
    rows = []
    for p, scores in enumerate(scores_by_problem):
        for i, s in enumerate(scores):
            rows.append({"problem_id": f"p{p}", "sample_index": i, "predicted_answer": str(i), "correct": i == 0,
                         "step_scores": [s]})
    return pl.DataFrame(rows)


def pb_frame(predictions, labels):
    return pl.DataFrame({"split": ["test"] * len(labels) + ["dev"], "prediction": predictions + [0], "label": labels + [0]})


def test_paired_comparisons_on_hand_made_per_sample_frames():
    good = bon_frame([[0.9, 0.1], [0.8, 0.2]])  # picks the correct candidate on both problems
    half = bon_frame([[0.9, 0.1], [0.2, 0.8]])  # on one
    assert bon_hits(good) == [1.0, 1.0] and bon_hits(half) == [1.0, 0.0]
    labels = [-1, 1, 2, -1]
    samples = {"a": {"bon": good, "processbench": pb_frame([-1, 1, 2, -1], labels)},  # every first error right
               "b": {"bon": half, "processbench": pb_frame([-1, 0, 0, 0], labels)},
               "c": {"bon": half}}  # no ProcessBench-style frame: best-of-N only
    rows, f1_se = paired_comparisons(samples, resamples=200, seed=0)
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = rows[0]
    assert ab["bon_diff"] == 0.5 and ab["bon_diff_se"] == pytest.approx(0.5) and not ab["bon_separable"]
    assert ab["f1_diff"] == pytest.approx(1.0 - f1_draws([-1, 0, 0, 0], labels, [[0, 1, 2, 3]])[0])
    assert ab["f1_diff_se"] > 0 and rows[1]["f1_diff"] is None and rows[2]["bon_diff"] == 0.0
    assert set(f1_se) == {"a", "b"} and f1_se["a"] > 0 and f1_se["b"] == 0.0  # b finds no first error: F1 0 on every draw


def test_test_rows_must_match_in_number():
    samples = {"a": {"bon": bon_frame([[1.0, 0.0]]), "processbench": pb_frame([-1, -1], [-1, -1])},
               "b": {"bon": bon_frame([[1.0, 0.0]]), "processbench": pb_frame([-1], [-1])}}
    with pytest.raises(ValueError, match="test rows differ in number"):
        paired_comparisons(samples)
