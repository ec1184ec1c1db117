"""A scripted generator for unit tests of the MC / denoising arithmetic only (everything else runs real engines).

For a prompt `question + "\\n" + steps[0..t] + "\\n"` it returns K completions of which round(c_t · K) carry the
gold answer, with c_t read from a script keyed by the question.
"""

from dataclasses import dataclass, field

from prm_core.generation.sampling import GenerationStats, Sample


def char_tokenizer(text: str) -> dict:
    """A tokenizer for scripted engines: one token per character (what `fit_to_context` measures prompts with)."""
    return {"input_ids": [ord(c) for c in text]}


@dataclass
class ScriptedEngine:
    script: dict  # question -> (gold answer, [c_0, c_1, ...])
    name: str = "scripted"
    stats: GenerationStats = field(default_factory=GenerationStats)
    calls: list = field(default_factory=list)
    context_len: int = 100_000
    tokenizer = staticmethod(char_tokenizer)

    def generate(self, prompts, spec):
        out = []
        for prompt in prompts:
            question, rest = prompt.split("\n", 1)
            gold, values = self.script[question]
            t = rest.count("\n") - 1
            hits = round(values[t] * spec.n)
            row = [Sample(text=f"Answer: {gold if j < hits else -1}", token_ids=[1, 2, 3], finish_reason="stop") for j in range(spec.n)]
            out.append(row)
            self.calls.append((question, t))
        self.stats.generated_tokens += 3 * spec.n * len(prompts)
        return out

    def close(self):
        pass


@dataclass
class SeedEchoEngine:
    """Answers every prompt with its request seed and the process it ran in (unit tests of how a pool splits work)."""

    name: str = "seed-echo"
    stats: GenerationStats = field(default_factory=GenerationStats)
    context_len: int = 100_000
    tokenizer = staticmethod(char_tokenizer)

    def generate(self, prompts, spec, offset=0):
        import os

        from prm_core.generation.sampling import request_seed

        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        return [[Sample(text=f"{p}|{request_seed(spec.seed, offset + i)}|{j}|{os.getpid()}", token_ids=[i],
                        finish_reason="stop") for j in range(spec.n)] for i, p in enumerate(prompts)]

    def close(self):
        pass


def seed_echo_engine(kind, model_dir, **options):
    """A pool's engine factory that builds a `SeedEchoEngine` whatever the settings."""
    return SeedEchoEngine()
