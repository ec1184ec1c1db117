"""The one precision decision (runtime/device.py): every branch, with torch's capability checks monkeypatched."""

import pytest
import torch

from prm_core.runtime import device
from prm_core.runtime.device import autocast, cpu_has_native_bf16, resolve_precision


def cpu(monkeypatch, capability: str, avx512_bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


def gpu(monkeypatch, available: bool, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize("capability,avx512_bf16,amx,expected", [
    ("AVX512", True, False, "bf16"),   # AVX512-BF16 (e.g. AMD EPYC Zen 4)
    ("AVX512", False, True, "bf16"),   # AMX tiles (Intel Sapphire Rapids)
    ("AVX512", False, False, "fp32"),  # AVX512 without bf16: emulated
    ("AVX2", False, False, "fp32"),    # the AVX2-only EPYC of issue 24: 13x slower training in bf16
    ("AVX2", True, True, "fp32"),      # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU: the slow case, reproduced
    ("DEFAULT", False, False, "fp32"),
])
def test_auto_on_cpu_is_bf16_only_with_native_support(monkeypatch, capability, avx512_bf16, amx, expected):
    cpu(monkeypatch, capability, avx512_bf16, amx)
    assert cpu_has_native_bf16() is (expected == "bf16")
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize("bf16,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_the_gpu(monkeypatch, bf16, expected):
    gpu(monkeypatch, True, bf16)
    cpu(monkeypatch, "AVX2", False)  # the host CPU does not matter for a CUDA device
    assert resolve_precision("auto", "cuda") == expected


def test_explicit_settings_win_and_bad_ones_are_refused(monkeypatch):
    cpu(monkeypatch, "AVX2", False)
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: slow here, but what the user said
    cpu(monkeypatch, "AVX512", True)
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32"):
        resolve_precision("fp16", "cpu")


def test_autocast_follows_the_decision(monkeypatch):
    cpu(monkeypatch, "AVX2", False)
    x = torch.randn(4, 4)
    with autocast("cpu", "auto"):
        assert (x @ x).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    assert device.PRECISIONS == ("auto", "bf16", "fp32")
