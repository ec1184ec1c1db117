"""The sampling knobs shared by every asset that samples whole responses per shard (rollouts, self-confidence)."""

import dagster as dg
from pydantic import Field


class ShardSamplingConfig(dg.Config):
    n_samples: int = Field(default=8, description="responses per problem (N; SCAN's self-confidence is their pass rate)")
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = Field(default=192, description="must cover the longest solution (6-step arith ≈ 125 tokens)")
    seed: int = 0
    reuse: bool = Field(default=True, description="keep shards already sampled from the same inputs and settings")

    def spec(self, shard: str):
        """The sampling spec of one shard: a seed of its own, so a shard does not depend on its run's other shards."""
        from prm_core.generation.sampling import SamplingSpec, derive_seed

        return SamplingSpec(n=self.n_samples, temperature=self.temperature, top_p=self.top_p,
                            max_new_tokens=self.max_new_tokens, seed=derive_seed(self.seed, shard))
