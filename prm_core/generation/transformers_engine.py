"""transformers models, decoded by our own batched loop: per-request seeds, a KV cache that drops finished rows.

The model's own modules (embeddings, decoder layers, norm, head, rotary embedding) run every token; this module only
holds the cache and the loop. Samples are drawn by inverse CDF from a uniform hashed from (request seed, sample,
step), so a prompt's samples do not depend on the batch it lands in (as vLLM's per-request seeds), and a slice of a
call (`offset`) samples what the whole call would. On a small model on CPU the loop is several times faster than
`model.generate` and than vLLM's CPU engine on an AVX2-only CPU (docs/engines.md); on GPU the rollout path is vLLM.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec, record_call, request_seed
from prm_core.runtime.device import bounded_host_heap
from prm_core.runtime.progress import progress_bar, quiet_transformers

_M32 = 0xFFFFFFFF


def _mix32(x):
    """A 32-bit integer hash (lowbias32) over an int64 tensor whose values fit in 32 bits."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def sample_uniforms(row_keys, step: int):
    """One uniform in (0, 1) per row for decode step `step`: a pure function of (row key, step)."""
    import torch

    x = _mix32(row_keys ^ ((step * 0x9E3779B1) & _M32))
    return (x.to(torch.float64) + 0.5) / 2**32


def row_keys(seeds: Sequence[int], n: int):
    """The key of sample j of a request seeded `s`: hash(s, j), for rows ordered (request, sample)."""
    import torch

    s = torch.tensor(list(seeds), dtype=torch.int64).repeat_interleave(n)
    j = torch.arange(n, dtype=torch.int64).repeat(len(seeds))
    return _mix32(_mix32(s & _M32) ^ ((j * 0x85EBCA77) & _M32))


def next_tokens(logits, spec: SamplingSpec, keys, step: int):
    """The sampled token of each row and its log-prob (temperature-scaled, as vLLM reports it): greedy at
    temperature 0, else inverse CDF over the top-p nucleus of softmax(logits / T)."""
    import torch

    logits = logits.float()
    if spec.temperature <= 0:
        tok = logits.argmax(-1)
        return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0]
    logp = torch.log_softmax(logits / spec.temperature, -1)
    probs = logp.exp()
    if spec.top_p < 1.0:  # keep the smallest set of most likely tokens whose mass reaches top_p
        sorted_p, order = probs.sort(-1, descending=True)
        outside = (sorted_p.cumsum(-1) - sorted_p) >= spec.top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    cdf = probs.double().cumsum(-1)
    u = sample_uniforms(keys, step)[:, None] * cdf[:, -1:]
    tok = (cdf < u).sum(-1).clamp(max=logits.shape[-1] - 1)
    return tok, logp.gather(-1, tok[:, None])[:, 0]


class _Cache:
    """Per-layer key/value columns for the rows in flight; `update` is the one method the model's attention calls."""

    def __init__(self):
        self.k: list = []
        self.v: list = []
        self.at = 0  # the column the current forward writes from

    def update(self, key, value, layer_idx: int, *_, **__):
        end = self.at + key.shape[2]
        self.k[layer_idx][:, :, self.at : end] = key
        self.v[layer_idx][:, :, self.at : end] = value
        return self.k[layer_idx][:, :, :end], self.v[layer_idx][:, :, :end]

    def allocate(self, rows: int, heads: int, columns: int, head_dim: int, layers: int, like) -> None:
        import torch

        self.k = [torch.zeros(rows, heads, columns, head_dim, dtype=like.dtype, device=like.device) for _ in range(layers)]
        self.v = [torch.zeros_like(t) for t in self.k]

    def select(self, index) -> None:
        """Keep only the rows in `index` (in that order): expand a prompt to its samples, or drop finished rows."""
        self.k = [t.index_select(0, index) for t in self.k]
        self.v = [t.index_select(0, index) for t in self.v]


class TransformersEngine:
    """A transformers causal LM of the Llama family, decoded by the batched loop above."""

    name = "transformers"

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 512, threads: int | None = None,
                 max_model_len: int | None = None, **_: object):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).eval()
        inner = getattr(self.model, "model", None)
        if not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
            raise ValueError(f"{self.model_dir}: the transformers engine decodes Llama-family models "
                             f"(embed_tokens, layers, norm, rotary_emb); use engine vllm for {type(self.model).__name__}")
        self.batch_size = batch_size  # sequences (prompt x sample) decoded together
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_model_len or 2**31
        self.context_len = min(max_model_len or positions, positions)  # vLLM's limit, when given, holds here too
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`n` samples per prompt, prompt i seeded as global index `offset + i`; on the CPU within
        `bounded_host_heap` (peak RSS flat over a long run, and training between calls runs on glibc's usual heap)."""
        with bounded_host_heap(self.model.device.type == "cpu"):
            return self._generate(prompts, spec, offset)

    def _generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int) -> list[list[Sample]]:
        start = time.perf_counter()
        tok = self.tokenizer
        ids = [tok(p)["input_ids"] for p in prompts]
        for i, p in enumerate(ids):
            if len(p) >= self.context_len:
                raise ValueError(f"prompt {offset + i} has {len(p)} tokens; the context is {self.context_len}")
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: little padding
        per_batch = max(1, self.batch_size // spec.n)
        out: list[list[Sample]] = [[] for _ in ids]
        with progress_bar(total=len(ids) * spec.n, desc="generate (transformers)", unit="seq") as bar:
            for b in range(0, len(order), per_batch):
                batch = order[b : b + per_batch]
                seeds = [request_seed(spec.seed, offset + i) for i in batch]
                for i, rows in zip(batch, self._decode([ids[i] for i in batch], seeds, spec)):
                    out[i] = rows
                bar.update(len(batch) * spec.n)
        record_call(self.stats, ids, out, time.perf_counter() - start)
        return out

    def _decode(self, prompts: list[list[int]], seeds: list[int], spec: SamplingSpec) -> list[list[Sample]]:
        """Prefill each prompt once, expand it to its `n` rows, then decode one token per step for the rows still
        running; finished rows leave the cache when they are half of it."""
        import torch

        model, inner, cfg = self.model, self.model.model, self.model.config
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        n, width = spec.n, max(len(p) for p in prompts)
        lengths = torch.tensor([len(p) for p in prompts])
        columns = min(width + spec.max_new_tokens, self.context_len + width - int(lengths.min()))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        valid = torch.arange(width)[None, :] >= (width - lengths)[:, None]  # left padding
        cache = _Cache()
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        cache.allocate(len(prompts), kv_heads, columns, head_dim, len(inner.layers), inner.embed_tokens.weight)

        def forward(x, positions, mask):
            h = inner.embed_tokens(x)
            rope = inner.rotary_emb(h, positions)
            for layer in inner.layers:
                h = layer(h, attention_mask=mask, position_embeddings=rope, past_key_values=cache, use_cache=True)
            return model.lm_head(inner.norm(h[:, -1]))

        with torch.inference_mode():
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            mask = (causal[None] & valid[:, None, :]) | torch.eye(width, dtype=torch.bool)[None]  # pads see themselves
            logits = forward(ids, (valid.cumsum(-1) - 1).clamp(min=0), mask[:, None])
            rows = torch.arange(len(prompts)).repeat_interleave(n)
            cache.select(rows)
            logits, valid, lengths = logits[rows], valid[rows], lengths[rows]
            keys = row_keys(seeds, n)
            steps = columns - width
            out_tok = torch.full((len(rows), steps), -1)  # -1: no token
            out_lp = torch.zeros(len(rows), steps)
            stopped = torch.zeros(len(rows), dtype=torch.bool)
            live = torch.arange(len(rows))  # each cache row's index among the (prompt, sample) rows
            running = torch.ones(len(rows), dtype=torch.bool)
            for step in range(steps):
                tok, lp = next_tokens(logits, spec, keys, step)
                eos_now = running & (tok == eos)
                emit = running & ~eos_now
                out_tok[live[emit], step] = tok[emit]
                out_lp[live[emit], step] = lp[emit].float()
                stopped[live[eos_now]] = True
                running = emit & (step + 1 < spec.max_new_tokens) & (lengths + step + 1 < self.context_len)
                alive = int(running.sum())
                if alive == 0:
                    break
                if alive <= len(live) // 2:  # compact: finished rows leave the cache
                    index = running.nonzero()[:, 0]
                    cache.select(index)
                    live, tok, keys, valid, lengths, running = live[index], tok[index], keys[index], valid[index], lengths[index], running[index]
                cache.at = width + step
                key_mask = torch.cat([valid, torch.ones(len(live), step + 1, dtype=torch.bool)], 1)
                logits = forward(tok[:, None], (lengths + step)[:, None], key_mask[:, None, None, :])
        counts = (out_tok >= 0).sum(1).tolist()
        toks, lps = out_tok.tolist(), out_lp.tolist()
        samples = [self._sample(toks[r][: counts[r]], lps[r][: counts[r]], bool(stopped[r]), spec) for r in range(len(rows))]
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _sample(self, tokens: list[int], logps: list[float], stopped: bool, spec: SamplingSpec) -> Sample:
        return Sample(
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            token_ids=tokens,
            finish_reason="stop" if stopped else "length",
            token_logprobs=logps if spec.logprobs else None,
        )

    def close(self) -> None:
        self.model = None
