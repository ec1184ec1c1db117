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


def device_type(device) -> str:
    """`cuda` or `cpu` of a torch.device or its type string."""
    return device if isinstance(device, str) else device.type


def autocast(device, enabled: bool = True):
    """bf16 autocast on `device` (a torch.device or its type string); a no-op context when not `enabled`."""
    import torch

    return torch.autocast(device_type(device), dtype=torch.bfloat16, enabled=enabled)


def default_device():
    """The device every trainer and scorer uses: the first CUDA GPU when present, else the CPU.

    Several GPUs come from `accelerate launch` (each process sees its own `LOCAL_RANK` device)."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def inference_dtype(device):
    """bf16 forward passes on CUDA (tensor cores); fp32 on the CPU, where bf16 matmuls are slow on most parts."""
    import torch

    return torch.bfloat16 if device_type(device) == "cuda" else torch.float32


def release_host_memory() -> None:
    """Hand freed native heap pages back to the OS (glibc `malloc_trim`): glibc keeps what torch/oneDNN freed, so a
    CPU engine's RSS crept up ~100 MiB per MC chunk (peak RSS grew with the pool); with this it stays ~flat."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass
