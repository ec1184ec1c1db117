"""ActPRM's one-shot filtered pool on hand-made inputs: what the active ensemble keeps at its recorded thresholds is
all the judge labels and all the final PRM trains on; the pool's step inputs line up with its trajectories."""

import polars as pl
import pytest
import torch

from prm_core.active.compare import TRAIN_KEYS, CompareConfig, new_heads
from prm_core.active.features import Pool, pool_of
from prm_core.active.filtered_pool import FilteredPool, filter_and_train
from prm_core.domains.problems import problems_frame
from tests.support.active import arith_pool

RECORDED_TRAIN = {k: getattr(CompareConfig(heads=3, batch_size=2), k) for k in TRAIN_KEYS}


@pytest.mark.parametrize("delta_pred, kept", [(0.0, 0), (1.01, 6)])
def test_the_judge_sees_only_what_the_active_ensemble_keeps(delta_pred, kept):
    d, trajs, x = arith_pool()
    pool = Pool(["p"] * len(trajs), trajs, x)
    active = new_heads(x, CompareConfig(heads=3), seed=1)
    recorded = {"delta_pred": delta_pred, "delta_std": 2.0, "train": RECORDED_TRAIN}
    unc, kept_idx, final = filter_and_train(pool, active, recorded, d, seed=0)
    assert len(unc) == len(trajs) and kept_idx == [i for i, u in enumerate(unc) if u.selected] and len(kept_idx) == kept
    untrained = new_heads(x, CompareConfig(**RECORDED_TRAIN), seed=0)
    assert torch.equal(final.flat(), untrained.flat()) == (kept == 0)  # nothing kept: no step taken
    again = filter_and_train(pool, active, recorded, d, seed=0)[2]
    assert torch.equal(again.flat(), final.flat())  # same seed, same heads


def test_summary_of_a_hand_made_filtered_pool():
    d, trajs, x = arith_pool(4)
    found = FilteredPool(pl.DataFrame({"num_tokens": [10, 20, 30, 40]}), Pool(["p"] * 4, trajs, x), [], [1, 2], None,
                         {"f1": 0.7}, [-1, 3, -1, 2])
    assert found.summary() == {"responses": 4, "kept": 2, "kept_fraction": 0.5, "f1": 0.7, "kept_error_rate": 0.5,
                               "pool_error_rate": 0.5, "generated_tokens": 100}


def test_pool_of_lines_prompts_and_inputs_up_with_the_rollouts():
    d, trajs, _ = arith_pool(3)
    problems = problems_frame([t.problem for t in trajs], "s")
    rollouts = pl.DataFrame({"response_id": ["x", "y", "z"], "problem_id": [trajs[2].problem.problem_id,
                                                                            trajs[0].problem.problem_id,
                                                                            trajs[2].problem.problem_id],
                             "steps": [trajs[2].steps, trajs[0].steps, ["only"]], "correct": [True, True, False]})
    calls = []

    class Features:  # StepFeatures' interface: step inputs per response, and the tokens forwarded so far
        tokens = 100

        def __call__(self, prompts, steps):
            calls.append((prompts, steps))
            self.tokens += 7 * len(prompts)
            return [torch.full((len(s), 2), float(i)) for i, s in enumerate(steps)]

    pool = pool_of(Features(), d, problems, rollouts)
    assert pool.tokens == 21  # this pool's forward only
    assert [t.response_id for t in pool.trajectories] == ["x", "y", "z"]
    assert pool.prompts == [d.prompt(trajs[2].problem), d.prompt(trajs[0].problem), d.prompt(trajs[2].problem)]
    assert [len(xi) for xi in pool.inputs] == [len(trajs[2].steps), len(trajs[0].steps), 1] and len(calls) == 1
    assert pool.example() == (pool.prompts[0], trajs[2].steps)
