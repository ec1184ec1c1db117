"""Where tensors run: one home for device checks and mixed precision (bf16 autocast on the model's device).

Multi-GPU placement comes from accelerate or Ray, not from code here.
"""

from __future__ import annotations

import functools


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


@functools.cache
def _glibc():
    """glibc's C library, or None (not Linux, or musl); loaded once (release_host_memory runs after every call)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


MMAP_THRESHOLD = 1 << 20  # bytes: larger blocks are mmapped and handed back to the OS when freed


def bound_host_heap() -> None:
    """Keep a long CPU engine's peak RSS flat: glibc serves ever larger tensors from its heap (its mmap threshold
    grows up to 32 MiB) and the heap fragments, so each generate call peaked higher than the last (bench/scaling.py:
    peak RSS 1.22x from 1x to 4x the pool); a fixed 1 MiB threshold (M_MMAP_THRESHOLD) holds it flat (1.00x) for
    ~20 % slower MC rollouts on CPU. glibc's own `MALLOC_MMAP_THRESHOLD_`, when set, is left to decide."""
    import os

    libc = _glibc()
    if libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(-3, MMAP_THRESHOLD)  # -3: M_MMAP_THRESHOLD


def release_host_memory() -> None:
    """Hand freed heap pages back to the OS after a call (glibc `malloc_trim`): without it a CPU engine's resting RSS
    crept up ~100 MiB per MC chunk."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
