"""transformers models (the Llama family), decoded by our own batched loop: per-request seeds, a prompt's keys read
once for all its samples, finished rows dropped from the cache.

The model's own modules (embeddings, decoder layers, norm, head, rotary embedding) run every token; this module only
holds the cache, the decode attention (through transformers' `AttentionInterface`) and the loop. Samples are drawn by inverse CDF from a uniform hashed from (request seed, sample,
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
    """Each prompt's keys/values once (from its prefill) and each row's generated ones, for the rows in flight.

    The model's attention calls `update`; in decode, `attend` reads a prompt's keys once for all its samples (rows
    are ordered by prompt: `group` is a row's prompt, `slot` its rank among that prompt's rows still running).
    """

    def __init__(self, layers: int):
        self.prompt_k: list = [None] * layers
        self.prompt_v: list = [None] * layers
        self.k: list = []
        self.v: list = []
        self.at = -1  # the generated column the current forward writes; -1: the prefill
        self.group = self.slot = self.prompt_valid = None
        self.n_max = 1

    def update(self, key, value, layer_idx: int, *_, **__):
        if self.at < 0:
            self.prompt_k[layer_idx], self.prompt_v[layer_idx] = key, value
            return key, value
        self.k[layer_idx][:, :, self.at] = key[:, :, 0]
        self.v[layer_idx][:, :, self.at] = value[:, :, 0]
        return self.k[layer_idx][:, :, : self.at + 1], self.v[layer_idx][:, :, : self.at + 1]

    def expand(self, n: int, columns: int, prompt_valid) -> None:
        """After the prefill: `n` rows per prompt, each with room for `columns` generated tokens."""
        import torch

        prompts, heads, _, head_dim = self.prompt_k[0].shape
        like = self.prompt_k[0]
        self.k = [like.new_zeros(prompts * n, heads, columns, head_dim) for _ in self.prompt_k]
        self.v = [torch.zeros_like(t) for t in self.k]
        self.prompt_valid = prompt_valid
        self._regroup(torch.arange(prompts).repeat_interleave(n))

    def select(self, index) -> None:
        """Keep only the rows in `index` (in order); prompts with no row left leave too."""
        self.k = [t.index_select(0, index) for t in self.k]
        self.v = [t.index_select(0, index) for t in self.v]
        self._regroup(self.group[index])

    def _regroup(self, group) -> None:
        import torch

        kept, group, counts = torch.unique_consecutive(group, return_inverse=True, return_counts=True)
        if len(kept) < self.prompt_k[0].shape[0]:
            self.prompt_k = [t.index_select(0, kept) for t in self.prompt_k]
            self.prompt_v = [t.index_select(0, kept) for t in self.prompt_v]
            self.prompt_valid = self.prompt_valid[kept]
        starts = counts.cumsum(0) - counts
        self.group, self.slot = group, torch.arange(len(group)) - starts.repeat_interleave(counts)
        self.n_max = int(counts.max())

    def attend(self, module, query, key, value, scaling: float):
        """One decode step's attention: softmax over [prompt keys, generated keys], the prompt part computed once per
        prompt for all its rows (query [rows, heads, 1, head_dim] -> [rows, 1, heads, head_dim])."""
        import torch
        from transformers.integrations.sdpa_attention import repeat_kv

        rep = getattr(module, "num_key_value_groups", 1)
        kp, vp = (repeat_kv(t, rep) for t in (self.prompt_k[module.layer_idx], self.prompt_v[module.layer_idx]))
        kg, vg = repeat_kv(key, rep), repeat_kv(value, rep)
        rows, heads, _, head_dim = query.shape
        q = query[:, :, 0]
        qp = q.new_zeros(kp.shape[0], heads, self.n_max, head_dim)
        qp[self.group, :, self.slot] = q
        sp = torch.matmul(qp, kp.transpose(-1, -2)).masked_fill(~self.prompt_valid[:, None, None, :], float("-inf"))
        scores = torch.cat([sp[self.group, :, self.slot], torch.matmul(query, kg.transpose(-1, -2))[:, :, 0]], -1)
        probs = torch.softmax(scores * scaling, -1)
        width = kp.shape[2]
        pp = probs.new_zeros(kp.shape[0], heads, self.n_max, width)
        pp[self.group, :, self.slot] = probs[..., :width]
        out = torch.matmul(pp, vp)[self.group, :, self.slot] + torch.matmul(probs[:, :, None, width:], vg)[:, :, 0]
        return out[:, None], None


def prompt_shared_attention(module, query, key, value, attention_mask, scaling=None, prm_cache=None, **kwargs):
    """The engine's attention: `_Cache.attend` in decode, transformers' SDPA in the prefill (and anywhere else)."""
    if prm_cache is None or prm_cache.at < 0:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    return prm_cache.attend(module, query, key, value, module.scaling if scaling is None else scaling)


ATTENTION = "prm_prompt_shared"


class TransformersEngine:
    """A transformers causal LM of the Llama family, decoded by the batched loop above."""

    name = "transformers"

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 512, threads: int | None = None,
                 max_model_len: int | None = None, **_: object):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
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
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION, prompt_shared_attention)
        self.model.config._attn_implementation = ATTENTION
        self.batch_size = batch_size  # sequences (prompt x sample) decoded together
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_model_len or 2**31
        self.context_len = min(max_model_len or positions, positions)  # vLLM's limit, when given, holds here too
        self.stats = GenerationStats()
        self.startup_seconds = time.perf_counter() - start  # as vLLM's: loading the model and tokenizer

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

        model, inner = self.model, self.model.model
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        n, width = spec.n, max(len(p) for p in prompts)
        lengths = torch.tensor([len(p) for p in prompts])
        columns = min(width + spec.max_new_tokens, self.context_len + width - int(lengths.min()))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        valid = torch.arange(width)[None, :] >= (width - lengths)[:, None]  # left padding
        cache = _Cache(len(inner.layers))

        def forward(x, positions, mask):
            h = inner.embed_tokens(x)
            rope = inner.rotary_emb(h, positions)
            for layer in inner.layers:
                h = layer(h, attention_mask=mask, position_embeddings=rope, past_key_values=cache, use_cache=True,
                          prm_cache=cache)
            return model.lm_head(inner.norm(h[:, -1]))

        with torch.inference_mode():
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            mask = (causal[None] & valid[:, None, :]) | torch.eye(width, dtype=torch.bool)[None]  # pads see themselves
            logits = forward(ids, (valid.cumsum(-1) - 1).clamp(min=0), mask[:, None])
            steps = columns - width
            cache.expand(n, steps, valid)
            rows = torch.arange(len(prompts)).repeat_interleave(n)
            logits, lengths = logits[rows], lengths[rows]
            keys = row_keys(seeds, n)
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
                    live, tok, keys, lengths, running = live[index], tok[index], keys[index], lengths[index], running[index]
                cache.at = step
                logits = forward(tok[:, None], (lengths + step)[:, None], None)
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
