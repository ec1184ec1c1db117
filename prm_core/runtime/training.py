"""The one optimisation loop every trainer uses (policy, PRM backbone, PRM heads and fine-tuning): AdamW (fused on
CUDA), a per-step learning-rate schedule, bf16 autocast on the model's device, gradient clipping at 1.0, and the
loss curve; plus the optional memory savers for 7B+ backbones (gradient checkpointing, LoRA through peft).

Multi-GPU (DDP/FSDP/DeepSpeed) is `accelerate`'s job: the same code run under `accelerate launch` gets an
`Accelerator` from `distributed()`, which wraps the model and optimizer; no process groups are written here.
"""

from __future__ import annotations

from collections.abc import Callable

from prm_core.runtime.device import device_type
from prm_core.runtime.progress import progress_bar


def adamw(groups: list[dict], device, **kwargs):
    """AdamW over parameter groups; the fused kernel on CUDA, PyTorch's default elsewhere."""
    import torch

    fused = device_type(device) == "cuda"
    return torch.optim.AdamW(groups, **({"fused": True} if fused else {}), **kwargs)


def distributed():
    """An `accelerate.Accelerator` when this process is one of several started by `accelerate launch`, else None."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator

    return Accelerator()


def optimise(opt, steps: int, loss_at: Callable[[int], object], lr_at: Callable[[int, float], float], clip: list,
             desc: str, accelerator=None) -> list[float]:
    """`steps` optimizer steps: set each group's lr from its base lr, loss = `loss_at(step)`, backward, clip, step.

    With an `accelerator` (several processes) backward and clipping go through it (gradients all-reduced)."""
    import torch

    backward = accelerator.backward if accelerator is not None else (lambda loss: loss.backward())
    clip_norm = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_

    base = [g["lr"] for g in opt.param_groups]
    losses = []
    with progress_bar(total=steps, desc=desc, unit="step") as bar:
        for step in range(steps):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr_at(step, lr)
            loss = loss_at(step)
            opt.zero_grad(set_to_none=True)
            backward(loss)
            clip_norm(clip, 1.0)
            opt.step()
            losses.append(loss.item())
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss_ema(losses):.3f}")
    return losses


def warmup_cosine(step: int, peak: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up to `peak`, then cosine decay to `min_lr_ratio`·peak at `total_steps`."""
    import math

    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def warmup_stable_decay(step: int, peak: float, warmup_steps: int, total_steps: int, decay_fraction: float,
                        min_lr_ratio: float) -> float:
    """Linear warm-up to `peak`, `peak` held, then a linear decay over the last `decay_fraction` of `total_steps` to
    `min_lr_ratio`·peak (warmup-stable-decay)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    start = total_steps * (1 - decay_fraction)
    if step < start:
        return peak
    return peak * (1 - (1 - min_lr_ratio) * min(1.0, (step - start) / max(1.0, total_steps - start)))


def loss_ema(losses: list[float]) -> float:
    """The exponential moving average (0.95) of a loss curve: the smoothed final loss."""
    ema = None
    for v in losses:
        ema = v if ema is None else 0.95 * ema + 0.05 * v
    return float(ema or 0.0)


def enable_memory_savers(model, gradient_checkpointing: bool = False, lora_rank: int = 0, keep: tuple[str, ...] = ()):
    """Gradient checkpointing and/or LoRA adapters (peft) on the attention and MLP projections; `keep` names
    modules trained in full (a PRM's head). Returns the model to train (a peft wrapper with LoRA)."""
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora_rank <= 0:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise RuntimeError("LoRA needs peft: pip install 'prm-foundry[train]' (or pip install peft)") from e
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cfg = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, target_modules=targets,
                     modules_to_save=list(keep) or None)
    return get_peft_model(model, cfg)


def merge_memory_savers(model):
    """The plain model back: LoRA adapters merged into the wrapped model's weights in place (peft's
    `merge_and_unload` returns that very model), gradient checkpointing off."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    return model
