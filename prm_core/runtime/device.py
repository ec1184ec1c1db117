"""Where tensors run: one home for device checks and the one precision decision (bf16 autocast or fp32).

`precision` is `auto | bf16 | fp32` wherever a trainer or scorer takes it; `resolve_precision` turns it into
what runs. `auto` is bf16 on a CUDA GPU that supports it, bf16 on a CPU only with native bf16 (AVX512-BF16 or AMX
kernels, as torch reports them), fp32 everywhere else: on an AVX2-only CPU bf16 is emulated and a training step
took 13x longer (2.6-5.1 s against 0.20-0.52 s, issue 24). `ATEN_CPU_CAPABILITY=avx2` makes torch report AVX2,
so the slow case's decision is reproduced on any CPU.

Multi-GPU placement comes from accelerate or Ray, not from code here.
"""

from __future__ import annotations

import contextlib
import functools
import os


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


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """Whether torch runs bf16 matmuls natively on this CPU: AVX512 kernels in use (not restricted by
    `ATEN_CPU_CAPABILITY`) on a CPU with AVX512-BF16 or AMX tiles."""
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def gpu_has_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(precision: str, device) -> str:
    """`bf16` or `fp32`: what `precision` (auto | bf16 | fp32) runs as on `device` (a torch.device or type string)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    native = gpu_has_bf16() if device_type(device) == "cuda" else cpu_has_native_bf16()
    return "bf16" if native else "fp32"


def autocast(device, precision: str = "auto"):
    """bf16 autocast on `device` (a torch.device or its type string) when `precision` resolves to bf16 there;
    a no-op context for fp32."""
    import torch

    enabled = resolve_precision(precision, device) == "bf16"
    return torch.autocast(device_type(device), dtype=torch.bfloat16, enabled=enabled)


def default_device():
    """The device every trainer and scorer uses: the first CUDA GPU when present, else the CPU.

    Several GPUs come from `accelerate launch` (each process sees its own `LOCAL_RANK` device)."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def scoring_precision(device) -> str:
    """What forward-only scoring runs as (PRM step scores, implicit log-probs, ActPRM's step inputs): `auto` on a
    CUDA GPU, fp32 on a CPU. There the testbed's tiny models score no faster in bf16 (a policy-sized step: 0.18 s
    bf16, 0.19-0.20 s fp32 on an AVX512-BF16 EPYC), and the implicit PRM's Q_k sums ~100 per-token differences of two
    nearly equal log-probs, which bf16 logits would drown."""
    return resolve_precision("auto", device) if device_type(device) == "cuda" else "fp32"


@functools.cache
def _glibc():
    """glibc's C library, or None (not Linux, or musl); loaded once (bounded_host_heap runs around every generate call)."""
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
UNBOUNDED_MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its growing threshold (64-bit)


@contextlib.contextmanager
def bounded_host_heap(enabled: bool = True):
    """Within: glibc's mmap threshold fixed at 1 MiB, and freed pages handed back at the end (`malloc_trim`); a no-op
    context when not `enabled` (an engine on a GPU).

    A CPU engine's generate calls run within it. glibc serves ever larger tensors from its heap (its threshold grows
    up to 32 MiB) and the heap fragments, so each call peaked higher than the last (bench/scaling.py: peak RSS 1.22x
    from 1x to 4x the pool; bounded 1.00x, for ~20 % slower MC rollouts on CPU), and the resting RSS crept up
    ~100 MiB per MC chunk without the trim. Outside, the threshold is 32 MiB: with it fixed at 1 MiB for the whole
    process, every training step's activations were fresh mmaps, and training beside an idle engine ran 1.65x slower
    (issue 24). glibc's own `MALLOC_MMAP_THRESHOLD_`, when set, is left to decide."""
    libc = _glibc() if enabled else None
    bound = libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ
    if bound:
        libc.mallopt(-3, MMAP_THRESHOLD)  # -3: M_MMAP_THRESHOLD
    try:
        yield
    finally:
        if bound:
            libc.mallopt(-3, UNBOUNDED_MMAP_THRESHOLD)
        if libc is not None:
            libc.malloc_trim(0)
