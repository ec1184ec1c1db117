"""One input format for every PRM, identical at training and scoring time (ProcessBench PR #12: separator ids
appended to each step's ids, never a separator string tokenised with the text):

    ids = enc(prompt) ; for each step: ids += enc(step, no specials) + [sep_id]

and the padded batches built from it. The step score is read at the separator that ends each step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    step_positions: list[int]  # index of the separator ending each step
    prompt_length: int  # ids of the prompt (with specials) before the first step, before truncation


def separator_id(tokenizer, separator: str) -> int:
    """The id of the step separator (the last token of its encoding, as SCAN and Math-Shepherd do)."""
    ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the tokenizer cannot encode the step separator {separator!r}")
    return ids[-1]


def encode(tokenizer, prompt: str, steps: list[str], sep_id: int, max_length: int = 512) -> Encoded:
    """Prompt ids (with the tokenizer's specials) then each step's ids and the separator id."""
    return encode_many(tokenizer, [prompt], [steps], sep_id, max_length)[0]


def encode_many(tokenizer, prompts: list[str], steps: list[list[str]], sep_id: int, max_length: int = 512) -> list[Encoded]:
    """`encode` of many examples, tokenised in two batched calls (prompts, then every step) instead of one per text."""
    prompt_ids = _ids(tokenizer, list(prompts), specials=True) if prompts else []
    flat = [step for example in steps for step in example]
    step_ids = iter(_ids(tokenizer, flat, specials=False) if flat else [])
    out = []
    for ids, example in zip(prompt_ids, steps):
        ids, positions, prompt_length = list(ids), [], len(ids)
        for _ in example:
            ids += next(step_ids) + [sep_id]
            positions.append(len(ids) - 1)
        if len(ids) > max_length:  # keep whole steps only
            positions = [p for p in positions if p < max_length]
            ids = ids[:max_length]
        out.append(Encoded(ids, positions, prompt_length))
    return out


def _ids(tokenizer, texts: list[str], specials: bool) -> list[list[int]]:
    """Ids of `texts` (with the tokenizer's specials or without): a fast tokenizer's Rust backend called directly,
    the very call `tokenizer(texts)` makes, without its Python overhead (3x less)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer(texts, add_special_tokens=specials)["input_ids"]
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no character offsets: we need ids only
    return [e.ids for e in encode(texts, add_special_tokens=specials)]


@dataclass(frozen=True)
class PRMExample:
    prompt: str
    steps: list[str]
    targets: list[float]  # soft targets in [0, 1], one per step


def pad_batch(tokenizer, encoded: list[Encoded], targets: list[list[float]]):
    """Right-padded ids, mask and per-token targets (NaN where no step ends)."""
    import torch

    width = -(-max(len(e.input_ids) for e in encoded) // 8) * 8
    pad = tokenizer.pad_token_id
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    y = torch.full((len(encoded), width), float("nan"))
    for i, (e, t) in enumerate(zip(encoded, targets)):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
        for pos, target in zip(e.step_positions, t):
            y[i, pos] = target
    return ids, mask, y


def first_occurrences(encoded: list[Encoded]) -> list[int]:
    """For each example, the index of the first example with identical ids: score that one, copy the rest
    (best-of-N candidates repeat, since a confident policy samples its greedy answer often: 1,472 distinct of 4,000)."""
    first: dict[tuple[int, ...], int] = {}
    return [first.setdefault(tuple(e.input_ids), i) for i, e in enumerate(encoded)]


def length_batches(tokenizer, encoded: list[Encoded], indices, batch_size: int):
    """(indices, ids, mask) of padded inference batches over `indices`, shortest sequences first."""
    order = sorted(indices, key=lambda i: len(encoded[i].input_ids))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        ids, mask, _ = pad_batch(tokenizer, [encoded[i] for i in idx], [[] for _ in idx])
        yield idx, ids, mask
