"""transformers `generate` as the fallback engine: fp32, static cache, length-sorted batches (testbed-probe.md §3).

A correctness fallback, never the GPU rollout path (vLLM is).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec, record_call, request_seed
from prm_core.runtime.device import bounded_host_heap
from prm_core.runtime.progress import progress_bar, quiet_transformers


class TransformersEngine:
    """transformers `generate` with a static KV cache over length-sorted, left-padded batches."""

    name = "transformers"

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 256, threads: int | None = None,
                 max_model_len: int | None = None, **_: object):
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
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_model_len or 2**31
        self.context_len = min(max_model_len or positions, positions)  # vLLM's limit, when given, holds here too
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`n` samples per prompt; on the CPU within `bounded_host_heap` (peak RSS flat over a long run, and training
        between calls runs on glibc's usual heap)."""
        with bounded_host_heap(self.model.device.type == "cpu"):
            return self._generate(prompts, spec, offset)

    def _generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        import torch

        if offset:  # it seeds per batch: a slice of a call cannot sample what the whole call would
            raise ValueError("the transformers engine seeds per batch and cannot generate a slice (offset > 0)")

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
        record_call(self.stats, ids, result, time.perf_counter() - start)
        return result

    def close(self) -> None:
        self.model = None
