"""The tiny policy: a Llama-style causal LM trained from scratch on reference solutions.

It is imperfect on purpose (testbed-probe.md §2): a 2-layer, 128-wide Llama trained for 1400 optimizer steps
reaches roughly 65-75 % sampled accuracy, and its mistakes are mostly arithmetic slips in the middle of
solutions — which is what makes Monte Carlo step labels really noisy. The budget is set in optimizer steps, not
seconds: learning goes through a sharp phase transition below ~900 steps.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from prm_core.domains.base import ExactDomain
from prm_core.runtime.device import autocast, default_device, resolve_precision
from prm_core.runtime.training import adamw, loss_ema, optimise, warmup_stable_decay


@dataclass(frozen=True)
class PolicyConfig:
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 512
    train_steps: int = 1400
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 30
    # the peak held, then a linear decay to 0 over the last 30 %: T=1 accuracy 0.706 at 1400 steps, against 0.678 for
    # a cosine decay to 0.1 (0.638 to 0) and 0.738 for that cosine at 1600 steps (issue 24; seed 0, 500 problems)
    decay_fraction: float = 0.3
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    bucket_batches: int = 8
    length_groups: int = 2  # each batch runs as this many micro-batches of similar length: less padding, same gradient
    precision: str = "auto"  # auto | bf16 | fp32 (runtime/device.py: bf16 only where the hardware runs it natively)
    seed: int = 0
    tokenizer_texts: int = 20000


@dataclass
class TrainReport:
    steps: int
    seconds: float
    tokens: int
    tokens_per_s: float
    final_loss: float
    params: int
    precision: str  # what ran: bf16 or fp32


def tokenizer_corpus(domain: ExactDomain, n: int, seed: int) -> list[str]:
    """Prompt + reference solution texts the tokenizer vocabulary is built from."""
    return [domain.prompt(p) + domain.reference_solution(p) for p in domain.problems(n, seed)]


def build_model(cfg: PolicyConfig, tokenizer):
    """A randomly initialised LlamaForCausalLM sized by `cfg` (tied embeddings, sdpa)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def _encode_batch(tokenizer, pairs: list[tuple[str, str]]):
    """Right-padded ids with loss only on solution tokens + eos, padded to a multiple of 8."""
    import torch

    prompts = tokenizer([p for p, _ in pairs])["input_ids"]  # one call each: the tokenizer batches in Rust
    solutions = tokenizer([s for _, s in pairs], add_special_tokens=False)["input_ids"]
    rows = []
    for p, s in zip(prompts, solutions):
        s = s + [tokenizer.eos_token_id]
        rows.append((p + s, [-100] * len(p) + s))
    width = -(-max(len(ids) for ids, _ in rows) // 8) * 8
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
    return ids, labels, mask


def length_groups(ids, labels, mask, groups: int):
    """A right-padded batch as `groups` micro-batches of rows of similar length, each cut to its own width (a
    multiple of 8): the padding a batch's longest row forces on all of it is mostly not computed."""
    import torch

    lengths = mask.sum(1)
    out = []
    for rows in torch.argsort(lengths, stable=True).chunk(groups):
        width = -(-int(lengths[rows].max()) // 8) * 8
        out.append((ids[rows, :width], labels[rows, :width], mask[rows, :width]))
    return out


def _batches(domain: ExactDomain, tokenizer, cfg: PolicyConfig):
    """An endless, seeded stream of length-bucketed training batches of fresh problems."""
    rng = random.Random(f"policy-train-{cfg.seed}")
    chunk = 0
    while True:
        problems = list(domain.problems(cfg.batch_size * cfg.bucket_batches, seed=10_000_000 + cfg.seed * 100_000 + chunk))
        chunk += 1
        pairs = sorted(((domain.prompt(p), domain.reference_solution(p)) for p in problems), key=lambda x: len(x[0]) + len(x[1]))
        groups = [pairs[i : i + cfg.batch_size] for i in range(0, len(pairs), cfg.batch_size)]
        rng.shuffle(groups)
        for group in groups:
            yield _encode_batch(tokenizer, group)


def lr_at(step: int, cfg: PolicyConfig) -> float:
    """Linear warm-up, the peak held, then a linear decay to `min_lr_ratio` of it over the last `decay_fraction`."""
    return warmup_stable_decay(step, cfg.lr, cfg.warmup_steps, cfg.train_steps, cfg.decay_fraction, cfg.min_lr_ratio)


def train_policy(domain: ExactDomain, tokenizer, cfg: PolicyConfig, model=None) -> tuple[object, TrainReport]:
    """Train the tiny policy from scratch (or `model` further) on reference solutions of fresh problems."""
    import torch

    torch.manual_seed(cfg.seed)
    device = default_device()
    model = (build_model(cfg, tokenizer) if model is None else model).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = adamw(groups, device, lr=cfg.lr, betas=(0.9, 0.98))
    batches = _batches(domain, tokenizer, cfg)
    precision = resolve_precision(cfg.precision, device)
    tokens = 0

    def loss_at(step: int):
        nonlocal tokens
        ids, labels, mask = (t.to(device) for t in next(batches))
        tokens += int(mask.sum())
        predicted = int((labels[:, 1:] != -100).sum())  # the batch's mean is over all its predicted tokens
        with autocast(device, precision):
            return sum(model(input_ids=i, attention_mask=m, labels=lab, num_items_in_batch=predicted).loss
                       for i, lab, m in length_groups(ids, labels, mask, cfg.length_groups))

    start = time.perf_counter()
    desc = "train policy" if cfg.seed < BACKBONE_SEEDS else "train PRM backbone"
    losses = optimise(opt, cfg.train_steps, loss_at, lambda step, _: lr_at(step, cfg), list(model.parameters()), desc)
    seconds = time.perf_counter() - start
    model.eval()
    report = TrainReport(
        steps=cfg.train_steps,
        seconds=seconds,
        tokens=tokens,
        tokens_per_s=tokens / max(seconds, 1e-9),
        final_loss=loss_ema(losses),
        params=sum(p.numel() for p in model.parameters()),
        precision=precision,
    )
    return model, report


def save_policy(model, tokenizer, cfg: PolicyConfig, path: Path) -> None:
    """`save_pretrained` model (safetensors) and tokenizer into `path`, written atomically."""
    import json

    from prm_core.lineage.storage import atomic_dir
    from prm_core.runtime.progress import quiet_transformers

    quiet_transformers()
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "policy_config.json").write_text(json.dumps(asdict(cfg), indent=2))


BACKBONE_SEEDS = 50  # PRM backbones continue on data seeds 50-99 (prm/backbone.py), policies use 0-49


def load_policy_config(path) -> PolicyConfig | None:
    import json

    from prm_core.lineage.storage import as_path

    f = as_path(path) / "policy_config.json"
    return policy_config_from(json.loads(f.read_text())) if f.exists() else None


def policy_config_from(saved: dict) -> PolicyConfig:
    """A saved `policy_config.json` as a PolicyConfig; keys of older versions (`bf16`) are dropped."""
    return PolicyConfig(**{k: v for k, v in saved.items() if k in PolicyConfig.__dataclass_fields__})
