"""The discriminative PRM: a token-level head scored at the step-separator token (algorithms.md §2.5, §5).

The model is `AutoModelForTokenClassification` with `num_labels=1` (`modeling_prm.py`); the step score is
σ(logit) at the separator that ends the step, on the input format of `encoding.py`. The backbone starts from
the policy (or the PRM backbone); training is BCE on soft or hard targets at the separators.
"""

from __future__ import annotations

from dataclasses import dataclass

from prm_core.prm.encoding import Encoded, PRMExample, encode, length_batches, pad_batch, separator_id
from prm_core.runtime.device import autocast

DEFAULT_MARKERS = ("=", ":")  # a step's result span starts after its last marker (modeling_prm.py)


@dataclass(frozen=True)
class PRMTrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr_head: float = 1e-2
    lr_body: float = 3e-4
    freeze_backbone: bool = True  # testbed-probe.md §9: fine-tuning re-adds the difficulty prior
    warmup_steps: int = 20
    bf16: bool = True
    seed: int = 0
    max_length: int = 512


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


def init_prm(policy_dir, tokenizer, separator: str, markers: tuple[str, ...] = DEFAULT_MARKERS, seed: int = 0):
    """A PRM whose backbone and LM head are the policy's; the step head is new (feature weights start at 1)."""
    import torch
    from transformers import AutoConfig

    from prm_core.prm.modeling_prm import FEATURES, StepVerifierConfig, StepVerifierForTokenClassification
    from prm_core.runtime.progress import quiet_transformers

    quiet_transformers()
    register_auto_classes()
    base = AutoConfig.from_pretrained(str(policy_dir)).to_dict()
    for key in ("model_type", "architectures", "transformers_version", "num_labels", "id2label", "label2id"):
        base.pop(key, None)
    config = StepVerifierConfig(separator_id=separator_id(tokenizer, separator),
                                marker_ids=marker_ids(tokenizer, markers), **base)
    torch.manual_seed(seed)
    model = StepVerifierForTokenClassification.from_pretrained(str(policy_dir), config=config)
    with torch.no_grad():
        model.feature_score.weight.fill_(1.0 / len(FEATURES))
    model.register_for_auto_class("AutoModelForTokenClassification")
    model.config.register_for_auto_class()
    return model


def load_prm(path):
    """A saved PRM (a directory or any fsspec URL)."""
    from transformers import AutoModelForTokenClassification

    from prm_core.lineage.storage import local_copy

    register_auto_classes()
    return AutoModelForTokenClassification.from_pretrained(str(local_copy(path))).eval()


def _head_params(model):
    return [p for n, p in model.named_parameters() if n.startswith(("score", "feature_score"))]


def _step_rows(model, tokenizer, encoded: list[Encoded], batch_size: int = 64):
    """For each encoded example, the head's inputs at its step positions (hidden [k, H], features [k, F])."""
    import torch

    out = [None] * len(encoded)
    with torch.inference_mode():
        for idx, ids, mask in length_batches(tokenizer, encoded, range(len(encoded)), batch_size):
            hidden, feats = model.head_inputs(ids, mask)
            for row, i in enumerate(idx):
                pos = encoded[i].step_positions
                out[i] = (hidden[row, pos].float().clone(), feats[row, pos].float().clone())
    return out


def train_prm(model, tokenizer, examples: list[PRMExample], separator: str, cfg: PRMTrainConfig):
    """BCE-with-logits on soft (or hard) targets at every step's separator token; returns the loss curve.

    With a frozen backbone the head's inputs are computed once per example and only the head is trained
    (the same `model.head` as at scoring time); otherwise the whole model is fine-tuned.
    """
    import random

    import torch

    from prm_core.runtime.progress import progress_bar

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    sep = separator_id(tokenizer, separator)
    encoded = [encode(tokenizer, ex.prompt, ex.steps, sep, cfg.max_length) for ex in examples]
    targets = [list(ex.targets[: len(e.step_positions)]) for ex, e in zip(examples, encoded)]
    head = _head_params(model)
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    for p in body:
        p.requires_grad_(not cfg.freeze_backbone)
    groups = [{"params": head, "lr": cfg.lr_head}] + ([] if cfg.freeze_backbone else [{"params": body, "lr": cfg.lr_body}])
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    base = [g["lr"] for g in opt.param_groups]
    cached = _step_rows(model, tokenizer, encoded) if cfg.freeze_backbone else None
    model.train()
    order: list[int] = []
    losses = []
    with progress_bar(total=cfg.steps, desc="train PRM", unit="step") as bar:
        for step in range(cfg.steps):
            if len(order) < cfg.batch_size:
                more = list(range(len(examples)))
                rng.shuffle(more)
                order += more
            idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * min(1.0, (step + 1) / cfg.warmup_steps)
            if cached is not None:
                logits = model.head(torch.cat([cached[i][0] for i in idx]), torch.cat([cached[i][1] for i in idx]))[:, 0]
                y = torch.tensor([t for i in idx for t in targets[i]], dtype=torch.float)
            else:
                ids, mask, y = pad_batch(tokenizer, [encoded[i] for i in idx], [targets[i] for i in idx])
                with autocast(model.device, cfg.bf16):
                    logits = model(input_ids=ids, attention_mask=mask).logits[..., 0].float()
                keep = ~torch.isnan(y)
                logits, y = logits[keep], y[keep]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head + ([] if cfg.freeze_backbone else body), 1.0)
            opt.step()
            losses.append(loss.item())
            bar.update(1)
    model.eval()
    for p in body:
        p.requires_grad_(True)
    return losses


def score_steps(model, tokenizer, prompts: list[str], steps: list[list[str]], separator: str,
                batch_size: int = 64, max_length: int = 512) -> list[list[float]]:
    """σ(logit) at each step's separator, with exactly the training-time encoding (identical inputs scored once)."""
    import torch

    sep = separator_id(tokenizer, separator)
    encoded = [encode(tokenizer, p, s, sep, max_length) for p, s in zip(prompts, steps)]
    first: dict[tuple[int, ...], int] = {}
    for i, e in enumerate(encoded):  # best-of-N candidates repeat: a confident policy samples its greedy answer often
        first.setdefault(tuple(e.input_ids), i)
    out: list[list[float]] = [[] for _ in encoded]
    with torch.inference_mode():
        for idx, ids, mask in length_batches(tokenizer, encoded, set(first.values()), batch_size):
            probs = torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits[..., 0].float())
            for row, i in enumerate(idx):
                out[i] = probs[row, encoded[i].step_positions].tolist()
    return [out[first[tuple(e.input_ids)]] for e in encoded]
