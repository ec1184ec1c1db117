"""Benchmark sets: a balanced ProcessBench-style set with dev/test splits, BoN candidates, the real ProcessBench."""

import polars as pl
import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.base import Problem
from prm_core.evaluation.benchmark_sets import bon_candidates, load_processbench, processbench_set
from prm_core.generation.sampling import GenerationStats, Sample
from tests.conftest import SHARED_DATA


class ReferenceOrSlipEngine:
    """Writes the reference solution, with a slip in the second step for every other prompt (a scripted policy
    for the set-building logic only)."""

    name, stats = "scripted", GenerationStats()

    def __init__(self):
        self.domain = ArithDomain()

    def generate(self, prompts, spec):
        out = []
        for i, prompt in enumerate(prompts):
            steps = self.domain.reference_solution(Problem("p", prompt.strip(), "0")).split("\n")
            if i % 2:  # every arith problem has at least two computation steps
                head, value = steps[1].rsplit("= ", 1)
                steps[1] = f"{head}= {int(value) + 1}"
            out.append([Sample("\n".join(steps), [1] * 5, "stop") for _ in range(spec.n)])
        return out

    def close(self):
        pass


def test_processbench_set_is_balanced_and_split():
    d = ArithDomain()
    pb = processbench_set(d, ReferenceOrSlipEngine(), n_per_class=10, seed=0)
    assert pb.height == 20
    assert (pb["label"] >= 0).sum() == 10 and (pb["label"] == -1).sum() == 10
    assert pb.filter(pl.col("label") >= 0)["label"].unique().to_list() == [1]
    for split in ("dev", "test"):
        part = pb.filter(pl.col("split") == split)
        assert (part["label"] >= 0).sum() == (part["label"] == -1).sum() == 5
    assert pb["prompt"][0].endswith("\n") and pb["id"].n_unique() == 20


def test_processbench_set_keeps_what_there_is_when_a_class_is_short():
    pb = processbench_set(ArithDomain(), ReferenceOrSlipEngine(), n_per_class=10, seed=0, oversample=1)
    assert (pb["label"] >= 0).sum() == (pb["label"] == -1).sum() == 5  # 10 problems, every other one slips


def test_bon_candidates_have_n_graded_samples_per_problem():
    c = bon_candidates(ArithDomain(), ReferenceOrSlipEngine(), n_problems=6, n=4, seed=0)
    assert c.height == 24 and c.group_by("problem_id").len()["len"].unique().to_list() == [4]
    assert {"correct", "greedy_correct", "predicted_answer", "steps"} <= set(c.columns)


@pytest.mark.skipif(not (SHARED_DATA / "processbench" / "gsm8k.json").exists(), reason="shared data not present")
def test_real_processbench_loads():
    pb = load_processbench(SHARED_DATA / "processbench" / "gsm8k.json")
    assert pb.height == 400 and (pb["label"] == -1).sum() == 193 and pb["split"].unique().to_list() == ["gsm8k"]
