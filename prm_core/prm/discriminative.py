"""The discriminative PRM: a token-level head scored at the step-separator token (algorithms.md §2.5, §5).

Any causal-LM backbone (Llama, Qwen2/3, Mistral, Gemma, …) as an `AutoModelForTokenClassification` with
`num_labels=1`; the step score is σ(logit) at the separator that ends the step, on the input format of
`encoding.py`. Two kinds: with the LM's log-prob features (`modeling_prm.py`, shipped beside the weights) or
without them — then the model *is* the stock `<Arch>ForTokenClassification` and loads without remote code.
Training is BCE on soft or hard targets at the separators: a frozen backbone trains the head on cached head
inputs; otherwise the whole model (or its LoRA adapters) is fine-tuned on length-bucketed batches.
"""

from __future__ import annotations

from dataclasses import dataclass

from prm_core.prm.encoding import Encoded, PRMExample, encode_many, first_occurrences, length_batches, pad_batch, separator_id
from prm_core.runtime.device import autocast, default_device, resolve_precision, scoring_precision
from prm_core.runtime.training import adamw, distributed, enable_memory_savers, merge_memory_savers, optimise

DEFAULT_MARKERS = ("=", ":")  # a step's result span starts after its last marker (modeling_prm.py)
HEAD_MODULES = ("score", "feature_score")  # trained in full, also when the backbone is frozen or LoRA-adapted


@dataclass(frozen=True)
class PRMTrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr_head: float = 1e-2
    lr_body: float = 3e-4
    freeze_backbone: bool = True  # testbed-probe.md §9: fine-tuning re-adds the difficulty prior
    warmup_steps: int = 20
    precision: str = "auto"  # auto | bf16 | fp32 (runtime/device.py); autocast when fine-tuning
    seed: int = 0
    max_length: int = 512
    gradient_checkpointing: bool = False  # fine-tuning only: activations recomputed in backward (7B+ backbones)
    lora_rank: int = 0  # fine-tuning only: > 0 trains LoRA adapters (peft) and the head instead of every weight
    bucket_batches: int = 8  # fine-tuning only: batches drawn from length-sorted groups of this many batches


def marker_ids(tokenizer, markers: tuple[str, ...]) -> list[int]:
    """Every vocabulary id whose text, stripped, is one of `markers` (` =` and `=` alike)."""
    wanted = set(markers)
    return sorted(i for tok, i in tokenizer.get_vocab().items()
                  if tokenizer.convert_tokens_to_string([tok]).strip() in wanted)


def register_auto_classes() -> None:
    """Let `Auto*` classes load our PRMs from this package, without `trust_remote_code`."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    from prm_core.prm.modeling_prm import StepVerifierConfig, StepVerifierForTokenClassification

    AutoConfig.register(StepVerifierConfig.model_type, StepVerifierConfig, exist_ok=True)
    AutoModelForTokenClassification.register(StepVerifierConfig, StepVerifierForTokenClassification, exist_ok=True)


def _ship_code(model):
    """Mark a feature PRM so that `save_pretrained` copies `modeling_prm.py` beside its weights."""
    model.register_for_auto_class("AutoModelForTokenClassification")
    model.config.register_for_auto_class()
    return model


def init_prm(backbone_dir, tokenizer, separator: str, markers: tuple[str, ...] = DEFAULT_MARKERS, seed: int = 0,
             features: bool = True, hidden_term: bool = False, attn_implementation: str = "sdpa"):
    """A PRM on the causal LM in `backbone_dir` (any architecture) with a new step head.

    `features=True`: the LM-feature PRM (`modeling_prm.py`, feature weights start at 1/4; `hidden_term` adds
    w·h_t to its logit); `features=False`: the stock `<Arch>ForTokenClassification` (hidden states only).
    Either way `config.separator_id` records the step separator."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

    from prm_core.prm.modeling_prm import StepVerifierConfig, StepVerifierForTokenClassification
    from prm_core.runtime.progress import quiet_transformers

    quiet_transformers()
    sep = separator_id(tokenizer, separator)
    torch.manual_seed(seed)
    if not features:
        model = AutoModelForTokenClassification.from_pretrained(str(backbone_dir), num_labels=1, dtype=torch.float32,
                                                                attn_implementation=attn_implementation)
        model.config.separator_id = sep
        return model
    register_auto_classes()
    lm = AutoModelForCausalLM.from_pretrained(str(backbone_dir), dtype=torch.float32, attn_implementation=attn_implementation)
    config = StepVerifierConfig(backbone_config=lm.config, separator_id=sep, marker_ids=marker_ids(tokenizer, markers),
                                hidden_term=hidden_term)
    model = StepVerifierForTokenClassification(config, lm=lm)
    model.lm.set_attn_implementation(attn_implementation)  # wrapping clears the shared backbone config's choice
    return _ship_code(model).eval()  # as `from_pretrained` returns it: no dropout until training starts


def has_features(model) -> bool:
    return hasattr(model, "head_inputs")


def load_prm(path):
    """A saved PRM (a directory or any fsspec URL) of either kind."""
    from transformers import AutoModelForTokenClassification

    from prm_core.lineage.storage import local_copy

    register_auto_classes()
    model = AutoModelForTokenClassification.from_pretrained(str(local_copy(path))).eval()
    return _ship_code(model) if has_features(model) else model  # saved again, it ships its code again


def head_inputs(model, ids, mask):
    """What the step head reads: (hidden states, LM features or None for a stock token classifier)."""
    if has_features(model):
        return model.head_inputs(ids, mask)
    return model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state, None


def head_logits(model, hidden, feats):
    """The step logit from `head_inputs` (the stock classifier's own dropout + `score`)."""
    if has_features(model):
        return model.head(hidden, feats)
    return model.score(model.dropout(hidden.float()))


def _head_params(model):
    return [p for n, p in model.named_parameters() if n.startswith(HEAD_MODULES)]


def _step_rows(model, tokenizer, encoded: list[Encoded], device, batch_size: int = 64):
    """For each encoded example, the head's inputs at its step positions (hidden [k, H], features [k, F] or None),
    at the scoring precision."""
    import torch

    first = first_occurrences(encoded)
    out = [None] * len(encoded)
    with torch.inference_mode(), autocast(device, scoring_precision(device)):
        for idx, ids, mask in length_batches(tokenizer, encoded, set(first), batch_size):
            hidden, feats = head_inputs(model, ids.to(device), mask.to(device))
            for row, i in enumerate(idx):
                pos = encoded[i].step_positions
                out[i] = (hidden[row, pos].float().clone(), None if feats is None else feats[row, pos].float().clone())
    return [out[f] for f in first]


def step_inputs(model, tokenizer, prompts: list[str], steps: list[list[str]], separator: str, max_length: int = 512):
    """Per response, what a head on this frozen PRM reads at each step: [hidden ; LM features], [T, H (+ F)]
    (ActPRM's ensemble heads train on these, computed once)."""
    return step_inputs_of(model, tokenizer, encode_many(tokenizer, prompts, steps, separator_id(tokenizer, separator), max_length))


def step_inputs_of(model, tokenizer, encoded: list[Encoded]):
    """`step_inputs` of responses already encoded (their tokens counted for FLOPs by the caller)."""
    import torch

    device = default_device()
    model.to(device).eval()
    rows = _step_rows(model, tokenizer, encoded, device)
    return [(h if f is None else torch.cat([h, f], -1)).cpu() for h, f in rows]


def training_precision(cfg: PRMTrainConfig, device) -> str:
    """What a PRM's training runs as: `cfg.precision` when fine-tuning; a frozen backbone's head trains in fp32 on
    head inputs computed once at the scoring precision (the inputs it is scored on)."""
    return scoring_precision(device) if cfg.freeze_backbone else resolve_precision(cfg.precision, device)


def _batch_order(encoded: list[Encoded], cfg: PRMTrainConfig, rng):
    """An endless stream of example-index batches: shuffled epochs; when fine-tuning, length-bucketed."""
    order: list[int] = []
    while True:
        if len(order) < cfg.batch_size:
            more = list(range(len(encoded)))
            rng.shuffle(more)
            if not cfg.freeze_backbone:  # similar lengths per batch (little padding), batches in random order
                span, bs = cfg.batch_size * cfg.bucket_batches, cfg.batch_size
                bucketed = []
                for b in range(0, len(more), span):
                    group = sorted(more[b: b + span], key=lambda i: len(encoded[i].input_ids))
                    batches = [group[j: j + bs] for j in range(0, len(group), bs)]
                    rng.shuffle(batches)
                    bucketed += [i for batch in batches for i in batch]
                more = bucketed
            order += more
        idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
        yield idx


def train_prm(model, tokenizer, examples: list[PRMExample], separator: str, cfg: PRMTrainConfig):
    """BCE-with-logits on soft (or hard) targets at every step's separator token; returns the loss curve.

    With a frozen backbone the head's inputs are computed once per example and only the head is trained
    (the same head as at scoring time); otherwise the whole model — or its LoRA adapters — is fine-tuned.
    Under `accelerate launch` with several processes, fine-tuning is data-parallel: every process draws the same
    batches and trains on its slice of each, gradients all-reduced by accelerate (its loss curve is its own).
    Returns the loss curve; the model is left trained (adapters merged) and in eval mode.
    """
    import random

    import torch

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = default_device()
    model.to(device)
    sep = separator_id(tokenizer, separator)
    encoded = encode_many(tokenizer, [ex.prompt for ex in examples], [ex.steps for ex in examples], sep, cfg.max_length)
    targets = [list(ex.targets[: len(e.step_positions)]) for ex, e in zip(examples, encoded)]
    head = _head_params(model)
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    for p in body:
        p.requires_grad_(not cfg.freeze_backbone)
    trained = model
    if not cfg.freeze_backbone:
        keep = tuple(n for n in HEAD_MODULES if hasattr(model, n))
        trained = enable_memory_savers(model, cfg.gradient_checkpointing, cfg.lora_rank, keep)
        if cfg.lora_rank > 0:  # the adapters (and the head copies peft trains) are what the optimizer sees
            head = [p for n, p in trained.named_parameters() if p.requires_grad and ("score" in n)]
            body = [p for n, p in trained.named_parameters() if p.requires_grad and "score" not in n]
    groups = [{"params": head, "lr": cfg.lr_head}] + ([] if cfg.freeze_backbone else [{"params": body, "lr": cfg.lr_body}])
    opt = adamw(groups, device, weight_decay=0.0)
    cached = _step_rows(model, tokenizer, encoded, device) if cfg.freeze_backbone else None  # as scored
    acc = None if cfg.freeze_backbone else distributed()
    rank, world = 0, 1
    if acc is not None:
        trained, opt = acc.prepare(trained, opt)
        rank, world = acc.process_index, acc.num_processes
        if cfg.batch_size % world:
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the {world} processes")
    trained.train()
    batches = _batch_order(encoded, cfg, rng)

    def loss_at(step: int):
        idx = next(batches)[rank::world]
        if cached is not None:
            feats = None if cached[idx[0]][1] is None else torch.cat([cached[i][1] for i in idx])
            logits = head_logits(model, torch.cat([cached[i][0] for i in idx]), feats)[:, 0]
            y = torch.tensor([t for i in idx for t in targets[i]], dtype=torch.float, device=device)
        else:
            ids, mask, y = (t.to(device) for t in pad_batch(tokenizer, [encoded[i] for i in idx], [targets[i] for i in idx]))
            with autocast(device, cfg.precision):
                logits = trained(input_ids=ids, attention_mask=mask).logits[..., 0].float()
            keep = ~torch.isnan(y)
            logits, y = logits[keep], y[keep]
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)

    clip = head + ([] if cfg.freeze_backbone else body)
    losses = optimise(opt, cfg.steps, loss_at, lambda step, lr: lr * min(1.0, (step + 1) / cfg.warmup_steps), clip,
                      "train PRM", accelerator=acc)
    merge_memory_savers(acc.unwrap_model(trained) if acc is not None else trained)  # LoRA merged into `model`
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def backbone_key(model) -> str:
    """md5 of a PRM's backbone weights: PRMs with one key (heads trained on one frozen backbone) read the same head
    inputs."""
    import hashlib

    import torch

    h = hashlib.md5()
    for name, t in sorted((model.lm if has_features(model) else model.base_model).state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _shared_step_rows(model, tokenizer, encoded: list[Encoded], device, batch_size: int, shared: dict):
    """`_step_rows` through `shared` (input ids -> head inputs, for one backbone): what another PRM on the same
    backbone already computed is not computed again."""
    ids = [tuple(e.input_ids) for e in encoded]
    missing = [i for i, k in enumerate(ids) if k not in shared]
    for i, row in zip(missing, _step_rows(model, tokenizer, [encoded[i] for i in missing], device, batch_size)):
        shared[ids[i]] = row
    return [shared[k] for k in ids]


def score_steps(model, tokenizer, prompts: list[str], steps: list[list[str]], separator: str,
                batch_size: int = 64, max_length: int = 512, shared: dict | None = None) -> list[list[float]]:
    """σ(logit) at each step's separator, with exactly the training-time encoding (identical inputs scored once).

    Batched, length-sorted, without grad, at the scoring precision (runtime/device.py). With `shared` (one dict per
    backbone, `backbone_key`'s, for every PRM on it), its head inputs are computed once and only the heads run per PRM."""
    import torch

    device = default_device()
    model.to(device)
    sep = separator_id(tokenizer, separator)
    encoded = encode_many(tokenizer, prompts, steps, sep, max_length)
    if shared is not None:
        with torch.inference_mode():
            return [torch.sigmoid(head_logits(model, h, f)[..., 0].float()).tolist()
                    for h, f in _shared_step_rows(model, tokenizer, encoded, device, batch_size, shared)]
    first = first_occurrences(encoded)
    out: list[list[float]] = [[] for _ in encoded]
    with torch.inference_mode(), autocast(device, scoring_precision(device)):
        for idx, ids, mask in length_batches(tokenizer, encoded, set(first), batch_size):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[..., 0]
            probs = torch.sigmoid(logits.float()).cpu()
            for row, i in enumerate(idx):
                out[i] = probs[row, encoded[i].step_positions].tolist()
    return [out[f] for f in first]
