"""What ActPRM's heads read, computed once per experiment: the frozen PRM backbone's step inputs ([hidden ; LM
features] at each step separator, `discriminative.step_inputs`) of a pool of rollouts or of a benchmark set."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import torch

from prm_core.active.judges import Trajectory


@dataclass
class StepFeatures:
    model: object  # the backbone's feature PRM (a new head that nothing reads: the inputs are what it sees)
    tokenizer: object
    separator: str = "\n"
    tokens: int = 0  # every token forwarded through the backbone so far (its FLOPs: evaluation/flops.py)

    @classmethod
    def load(cls, backbone, separator: str = "\n") -> StepFeatures:
        from transformers import AutoTokenizer

        from prm_core.prm.discriminative import init_prm

        tokenizer = AutoTokenizer.from_pretrained(backbone)
        return cls(init_prm(backbone, tokenizer, separator), tokenizer, separator)

    def __call__(self, prompts: list[str], steps: list[list[str]]) -> list[torch.Tensor]:
        from prm_core.prm.discriminative import step_inputs_of
        from prm_core.prm.encoding import encode_many, separator_id

        encoded = encode_many(self.tokenizer, prompts, steps, separator_id(self.tokenizer, self.separator))
        self.tokens += sum(len(e.input_ids) for e in encoded)
        return step_inputs_of(self.model, self.tokenizer, encoded)

    def of(self, frame: pl.DataFrame) -> list[torch.Tensor]:
        """A benchmark set's (columns `prompt`, `steps`)."""
        return self(frame["prompt"].to_list(), frame["steps"].to_list())


@dataclass
class Pool:
    """The rollouts' responses as trajectories, in the rollouts' order, each with its prompt and step inputs."""

    prompts: list[str]
    trajectories: list[Trajectory]
    inputs: list[torch.Tensor]
    tokens: int = 0  # the tokens forwarded through the backbone for `inputs`

    def example(self) -> tuple[str, list[str]]:
        """The first (prompt, steps): a logged scorer's input example."""
        return self.prompts[0], list(self.trajectories[0].steps)


def pool_of(features: StepFeatures, domain, problems: pl.DataFrame, rollouts: pl.DataFrame) -> Pool:
    """The pool of `rollouts` (every response of every question) on `problems`, with its step inputs."""
    from prm_core.domains.problems import prompts_frame
    from prm_core.labels.mc_estimates import responses_of

    by_id = dict(prompts_frame(domain, problems).iter_rows())
    prompts = [by_id[p] for p in rollouts["problem_id"]]
    before = features.tokens
    inputs = features(prompts, rollouts["steps"].to_list())
    trajectories = [Trajectory(r.response_id, r.problem, r.steps) for r in responses_of(problems, rollouts)]
    return Pool(prompts, trajectories, inputs, features.tokens - before)
