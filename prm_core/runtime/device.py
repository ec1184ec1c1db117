"""Where tensors run: one home for device checks and mixed precision (bf16 autocast on the model's device).

Multi-GPU placement comes from accelerate or Ray, not from code here.
"""

from __future__ import annotations


def on_gpu() -> bool:
    """Whether a CUDA device is usable in this process."""
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def autocast(device, enabled: bool = True):
    """bf16 autocast on `device` (a torch.device or its type string); a no-op context when not `enabled`."""
    import torch

    device_type = device if isinstance(device, str) else device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled)
