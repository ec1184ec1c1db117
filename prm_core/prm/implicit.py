"""Implicit PRM (algorithms.md §4): process rewards from outcome labels alone.

An outcome reward model parameterised as a log-likelihood ratio of two causal LMs, θ trained and ref frozen
(both start from the same checkpoint), is trained on response-level correctness (`losses.py`):

    ρ(y) = β · Σ_i δ_i,   δ_i = log π_θ(y_i | y_<i) − log π_ref(y_i | y_<i)     over the response's tokens

Its partial sums are soft Q values (Proposition 3.1), so every step gets a reward with no step label:

    Q_k = coef · Σ_{i ≤ end of step k} δ_i,    r_k = Q_k − Q_{k−1},  Q_0 = 0,  Σ_k r_k = (coef/β) · ρ(y)

Inputs use the PRM's one encoding (`encoding.py`): steps tokenised one by one with the separator id after each,
the same at training and scoring time, so step k ends at its separator; the response is what follows the prompt.
coef defaults to β, so σ(Q_T) is the trained ORM's own probability of a correct outcome. Torch and
transformers only (no polars): the asset builds the `Outcome`s.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from prm_core.prm.encoding import Encoded, encode_many, first_occurrences, separator_id
from prm_core.prm.losses import LOSSES, PAIRED, ce_loss, dpo_loss, kto_loss, nca_loss
from prm_core.runtime.device import autocast, default_device, resolve_precision, scoring_precision
from prm_core.runtime.training import adamw, distributed, optimise, warmup_cosine


@dataclass(frozen=True)
class Outcome:
    """A graded response: its question's id and prompt, its steps, and whether its final answer is right."""

    problem_id: str
    prompt: str
    steps: list[str]
    correct: bool


@dataclass(frozen=True)
class ImplicitConfig:
    loss: str = "ce"
    beta: float = 0.05  # the paper's β for CE and DPO
    lr: float = 2e-4  # tiny testbed policy; the paper's 5e-7 is for 8B models
    epochs: int = 1
    batch_size: int = 16  # responses (CE, KTO) or pairs (DPO, NCA) per step
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1  # cosine_with_min_lr
    seed: int = 0
    max_length: int = 512
    precision: str = "auto"  # auto | bf16 | fp32 (runtime/device.py)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown implicit PRM loss {self.loss!r}; known: {', '.join(LOSSES)}")


@dataclass(frozen=True)
class EncodedResponse:
    encoded: Encoded
    start: int  # index of the first response token


def outcomes_of(rows, prompts: dict[str, str]) -> list[Outcome]:
    """The `Outcome` of each (problem_id, steps, correct) row, with its question's prompt."""
    return [Outcome(p, prompts[p], list(s), bool(c)) for p, s, c in rows]


def trainable(outcomes: list[Outcome], loss: str) -> bool:
    """Whether `loss` has anything to learn from: a response, and for a paired loss a question both right and wrong."""
    return bool(outcomes) and (loss not in PAIRED or bool(preference_pairs(outcomes)))


def preference_pairs(outcomes: list[Outcome]) -> list[tuple[int, int]]:
    """Every (correct, incorrect) pair of responses to one question; one-outcome questions give none (DPO data)."""
    by_problem: dict[str, list[int]] = {}
    for i, o in enumerate(outcomes):
        by_problem.setdefault(o.problem_id, []).append(i)
    return [(w, l) for idx in by_problem.values() for w in idx if outcomes[w].correct
            for l in idx if not outcomes[l].correct]


def encode_responses(tokenizer, prompts: list[str], steps: list[list[str]], separator: str,
                     max_length: int = 512) -> list[EncodedResponse]:
    """The one PRM encoding of each (prompt, steps), with where its response starts."""
    encoded = encode_many(tokenizer, prompts, steps, separator_id(tokenizer, separator), max_length)
    return [EncodedResponse(e, min(e.prompt_length, len(e.input_ids))) for e in encoded]


def _forward_logps(model, seqs: list[EncodedResponse], device, precision: str | None = None):
    """Per-token log π(y_i | y_<i) [batch, width] (0 off the response) of right-padded sequences, at `precision`
    (training's; None: the scoring precision)."""
    import torch

    width = max(len(s.encoded.input_ids) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    response = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        n = len(s.encoded.input_ids)
        ids[i, :n], mask[i, :n], response[i, s.start:n] = torch.tensor(s.encoded.input_ids), 1, True
    ids, mask, response = ids.to(device), mask.to(device), response.to(device)
    with autocast(device, precision or scoring_precision(device)):  # log-softmax in fp32 either way
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    lp = logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)  # log softmax at the next token
    lp = torch.cat([lp.new_zeros(len(seqs), 1), lp], 1)  # position i holds log π(ids_i | ids_<i)
    return torch.where(response, lp, torch.zeros_like(lp))


def sequence_logps(model, seqs: list[EncodedResponse], device, batch_size: int = 64, precision: str | None = None):
    """Σ_i log π(y_i | y_<i) over each response, without grad (the frozen reference: computed once, cached)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            out.append(_forward_logps(model, seqs[i:i + batch_size], device, precision).sum(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _mismatched(seqs: list[EncodedResponse]) -> list[EncodedResponse]:
    """Each response after the next one's prompt (x', y): KTO's KL baseline pairs."""
    out = []
    for i, s in enumerate(seqs):
        other = seqs[(i + 1) % len(seqs)]
        ids = other.encoded.input_ids[: other.start] + s.encoded.input_ids[s.start:]
        out.append(EncodedResponse(Encoded(ids, [], other.start), other.start))
    return out


def train_implicit(model, ref, tokenizer, outcomes: list[Outcome], separator: str, cfg: ImplicitConfig):
    """Train θ (`model`, initialised from the reference checkpoint) on outcome labels with `cfg.loss`.

    Returns (loss curve, stats: responses, pairs, steps, tokens_trained, tokens_ref, precision)."""
    import torch

    torch.manual_seed(cfg.seed)
    rng = random.Random(f"implicit-{cfg.loss}-{cfg.seed}")
    device = default_device()
    model.to(device).train()
    ref.to(device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    seqs = encode_responses(tokenizer, [o.prompt for o in outcomes], [o.steps for o in outcomes], separator, cfg.max_length)
    # π_ref is frozen: its log-probs once, at θ's precision (ρ = 0 at initialisation)
    ref_lp = sequence_logps(ref, seqs, device, precision=cfg.precision).to(device)
    labels = torch.tensor([o.correct for o in outcomes], dtype=torch.float, device=device)
    units = preference_pairs(outcomes) if cfg.loss in PAIRED else list(range(len(outcomes)))
    if not units:
        why = "no question has both a correct and an incorrect response" if cfg.loss in PAIRED else "no responses"
        raise ValueError(f"no training data for {cfg.loss!r}: {why}")
    batches = []
    for _ in range(cfg.epochs):  # each epoch a new shuffle, cut into batches
        shuffled = rng.sample(units, len(units))
        batches += [shuffled[i:i + cfg.batch_size] for i in range(0, len(shuffled), cfg.batch_size)]
    steps = len(batches)
    tokens = {"trained": 0, "ref": sum(len(s.encoded.input_ids) for s in seqs)}

    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw([{"params": params, "lr": cfg.lr}], device, betas=(0.9, 0.95), weight_decay=0.0)
    acc, trained, rank, world = distributed(), model, 0, 1
    if acc is not None:  # `accelerate launch`: data-parallel, each process its slice of every batch
        trained, opt = acc.prepare(model, opt)
        rank, world = acc.process_index, acc.num_processes

    def rho(idx: list[int]):
        batch = [seqs[i] for i in idx]
        tokens["trained"] += sum(len(s.encoded.input_ids) for s in batch)
        return cfg.beta * (_forward_logps(trained, batch, device, cfg.precision).sum(-1) - ref_lp[idx])  # ρ = β·Σ δ_i

    def loss_at(step: int):
        chunk = batches[step][rank::world] or batches[step][:1]  # a last batch smaller than the world: repeat one
        if cfg.loss in PAIRED:
            r = rho([w for w, _ in chunk] + [l for _, l in chunk])
            chosen, rejected = r[: len(chunk)], r[len(chunk):]
            return dpo_loss(chosen, rejected) if cfg.loss == "dpo" else nca_loss(chosen, rejected)
        r = rho(chunk)
        if cfg.loss == "ce":
            return ce_loss(r, labels[chunk])
        mism = _mismatched([seqs[i] for i in chunk])  # KTO: z = β·mean log π_θ/π_ref over (x', y), detached
        with torch.no_grad():
            kl = (_forward_logps(model, mism, device, cfg.precision).sum(-1)
                  - _forward_logps(ref, mism, device, cfg.precision).sum(-1)).mean()
            if acc is not None:
                kl = acc.reduce(kl, reduction="mean")  # one baseline across processes
        tokens["ref"] += 2 * sum(len(s.encoded.input_ids) for s in mism)
        return kto_loss(r, labels[chunk], cfg.beta * kl)

    warmup = max(1, math.ceil(cfg.warmup_ratio * steps))
    losses = optimise(opt, steps, loss_at, lambda step, lr: warmup_cosine(step, lr, warmup, steps, cfg.min_lr_ratio),
                      params, f"train implicit PRM ({cfg.loss})", accelerator=acc)
    model.eval()
    stats = {"responses": len(outcomes), "pairs": len(units) if cfg.loss in PAIRED else 0, "steps": steps,
             "tokens_trained": tokens["trained"], "tokens_ref": tokens["ref"], "precision": resolve_precision(cfg.precision, device)}
    return losses, stats


def step_values(model, tokenizer, prompts: list[str], steps: list[list[str]], separator: str,
                batch_size: int = 64, max_length: int = 512) -> list[list[float]]:
    """Σ_{i ≤ end of step k} log π(y_i | y_<i) for every step k of every response: one model's cumulative log-probs.

    The implicit PRM's Q_k is coef·(this for θ − this for ref); a model's own values are the "w/o ref" variant."""
    import torch

    device = default_device()
    model.to(device).eval()
    seqs = encode_responses(tokenizer, prompts, steps, separator, max_length)
    first = first_occurrences([s.encoded for s in seqs])  # identical inputs scored once
    order = sorted(set(first), key=lambda i: len(seqs[i].encoded.input_ids))  # length-sorted batches
    out: list[list[float]] = [[] for _ in seqs]
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            cum = _forward_logps(model, [seqs[i] for i in idx], device).cumsum(-1).cpu()
            for row, i in enumerate(idx):
                out[i] = cum[row, seqs[i].encoded.step_positions].tolist()
    return [out[f] for f in first]


def implicit_rewards(theta: list[list[float]], ref: list[list[float]] | None, coef: float) -> dict[str, list[list[float]]]:
    """Q_k = coef·(θ − ref cumulative log-probs) and r_k = Q_k − Q_{k−1} per step (`ref=None`: w/o ref)."""
    q = [[coef * (a - (b[k] if ref is not None else 0.0)) for k, a in enumerate(t)]
         for t, b in zip(theta, ref if ref is not None else theta)]
    r = [[v - (row[k - 1] if k else 0.0) for k, v in enumerate(row)] for row in q]
    return {"q": q, "r": r}
