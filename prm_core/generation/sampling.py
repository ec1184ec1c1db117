"""The generation interface every engine implements: prompts in, `n` seeded samples out, with token counts.

`SamplingSpec` says how to sample, `Sample` is one response, `GenerationStats` what a call cost; per-request
and per-unit seeds make samples independent of batching and of the order work is done in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingSpec:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 192
    seed: int = 0
    logprobs: bool = False


@dataclass
class Sample:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (eos) or "length"
    token_logprobs: list[float] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class GenerationStats:
    requests: int = 0
    samples: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    retries: int = 0  # requests sent again after a transient failure (a served engine's 429/5xx/timeouts)
    calls: list[dict] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


class Engine(Protocol):
    name: str
    stats: GenerationStats
    tokenizer: object  # the model's own (a transformers tokenizer)
    context_len: int  # prompt + generated tokens per sequence

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`spec.n` samples for every prompt, in prompt order; prompt i is seeded as global index `offset + i`."""
        ...

    def close(self) -> None: ...


def request_seed(seed: int, index: int) -> int:
    """The per-request seed of prompt `index` in a call seeded with `seed`."""
    return (seed * 1_000_003 + index * 7_919 + 1) % (2**31 - 1)


def derive_seed(seed: int, key: str) -> int:
    """A seed of its own for a named unit of work (a shard, a chunk), stable across runs and processes."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


def record_call(stats: GenerationStats, prompts_ids: list[list[int]], out: list[list[Sample]], seconds: float,
                usage: tuple[int, int] | None = None) -> None:
    """Add one generate call to `stats`; `usage`: (prompt, generated) tokens as a server counted them, instead of
    counting the prompts and samples here."""
    prompt, gen = usage or (sum(len(p) for p in prompts_ids), sum(s.num_tokens for row in out for s in row))
    stats.requests += len(prompts_ids)
    stats.samples += sum(len(row) for row in out)
    stats.prompt_tokens += prompt
    stats.generated_tokens += gen
    stats.seconds += seconds
    stats.calls.append({"requests": len(prompts_ids), "generated_tokens": gen, "seconds": round(seconds, 3)})
