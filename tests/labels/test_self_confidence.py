"""SCAN's self-confidence: the share of the N requested samples that reach the gold answer (answer-less = wrong)."""

import polars as pl
import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.problems import problems_frame
from prm_core.generation.rollouts import sample_rollouts
from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec
from prm_core.labels.self_confidence import fresh_self_confidence, sc_bucket, self_confidence
from tests.scripted import char_tokenizer

D = ArithDomain()


class FixedEngine:
    """Per prompt: `hits` samples with the gold answer, one with no answer line, the rest wrong."""

    name, stats, context_len, tokenizer = "fixed", GenerationStats(), 100_000, staticmethod(char_tokenizer)

    def __init__(self, gold: dict[str, str], hits: dict[str, int]):
        self.gold, self.hits = gold, hits

    def generate(self, prompts, spec):
        out = []
        for p in prompts:
            texts = [f"Answer: {self.gold[p]}"] * self.hits[p] + ["no answer here"]
            texts += ["Answer: -1"] * (spec.n - len(texts))
            out.append([Sample(text=t, token_ids=[1] * (i + 1), finish_reason="stop") for i, t in enumerate(texts[: spec.n])])
        return out


def _setup():
    pool = problems_frame(D.problems(3, seed=7), "s0")
    problems = list(D.problems(3, seed=7))
    prompts = [D.prompt(p) for p in problems]
    return pool, FixedEngine({q: p.answer for q, p in zip(prompts, problems)}, dict(zip(prompts, [0, 3, 7])))


def test_self_confidence_of_the_rollouts_costs_no_tokens():
    pool, engine = _setup()
    rollouts = sample_rollouts(D, engine, pool, SamplingSpec(n=8))
    sc = self_confidence(rollouts, 8)
    assert sc["n_samples"].to_list() == [8, 8, 8]
    assert sc["n_correct"].to_list() == [0, 3, 7]  # the answer-less sample counts as wrong
    assert sc["self_confidence"].to_list() == [0.0, 3 / 8, 7 / 8]
    assert sc["tokens"].to_list() == [0, 0, 0]
    assert sc["shard"].to_list() == ["s0"] * 3
    # the denominator is the requested N even when rows are missing (a response removed upstream counts as wrong)
    short = self_confidence(rollouts.filter(~((pl.col("problem_id") == sc["problem_id"][1]) & pl.col("correct"))), 8)
    assert short["self_confidence"].to_list() == [0.0, 0.0, 7 / 8]
    with pytest.raises(ValueError, match="has 8 responses"):
        self_confidence(rollouts, 4)


def test_fresh_self_confidence_counts_its_tokens():
    pool, engine = _setup()
    sc = fresh_self_confidence(D, engine, pool, SamplingSpec(n=8))
    assert sc["self_confidence"].to_list() == [0.0, 3 / 8, 7 / 8]
    assert sc["tokens"].to_list() == [36, 36, 36]  # 1 + 2 + ... + 8 token ids per problem


def test_sc_buckets_follow_the_preliminary_study():
    df = pl.DataFrame({"sc": [0.0, 0.25, 0.5, 0.74, 0.75, 1.0]})
    assert df.select(sc_bucket(pl.col("sc")).alias("b"))["b"].to_list() == ["low", "mid", "mid", "mid", "high", "high"]
