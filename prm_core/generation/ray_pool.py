"""One generation engine over a pool of Ray actors, each holding one engine built from the same settings (one vLLM
per GPU, the pattern of SCAN's annotator, OpenRLHF and veRL).

Prompts fan out in balanced contiguous slices (a response's step prefixes stay on one engine, so its prefix cache still
hits) and every prompt is seeded by its index in the whole call, so the samples do not depend on the number of actors.
Ray is imported only when a pool is built; the cluster is whatever `ray.init` connected to (dagster-ray's resource).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from prm_core.generation.engines import make_engine  # an actor's engine: a remote model copied locally
from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec

STARTUP_TIMEOUT_S = 900.0  # engines load within it, or the pool fails (a cluster short of resources never starts them)


def balanced_slices(total: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous `(start, stop)` slices of `total` items over at most `parts` workers, sizes within one of each other;
    empty slices are left out."""
    base, extra = divmod(total, max(parts, 1))
    slices, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        if stop > start:
            slices.append((start, stop))
        start = stop
    return slices


class EngineHost:
    """One actor's engine (the class Ray makes an actor of)."""

    def __init__(self, factory: Callable, kind: str, model_dir: str, options: dict):
        self.engine = factory(kind, model_dir, **options)

    def describe(self) -> dict:
        engine = self.engine
        return {"name": engine.name, "context_len": engine.context_len, "tokenizer": engine.tokenizer,
                "startup_seconds": getattr(engine, "startup_seconds", 0.0)}

    def generate(self, prompts: list[str], spec: SamplingSpec, offset: int) -> tuple[list[list[Sample]], int]:
        """The samples and the prompt tokens they cost (the driver's stats add them up)."""
        before = self.engine.stats.prompt_tokens
        out = self.engine.generate(prompts, spec, offset=offset)
        return out, self.engine.stats.prompt_tokens - before

    def close(self) -> None:
        self.engine.close()


class RayEnginePool:
    """The `Engine` interface over `replicas` Ray actors; `close()` kills them."""

    def __init__(self, kind: str, model_dir: str | os.PathLike, replicas: int = 1, gpus_per_replica: float = 1.0,
                 cpus_per_replica: float = 1.0, startup_timeout: float = STARTUP_TIMEOUT_S,
                 factory: Callable = make_engine, **options):
        import ray

        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        if not ray.is_initialized():
            raise RuntimeError("no Ray cluster connected: give GeneratorResource a dagster-ray resource (ray_cluster) "
                               "or call ray.init() first")
        actor = ray.remote(num_cpus=cpus_per_replica, num_gpus=gpus_per_replica)(EngineHost)
        self.actors = [actor.remote(factory, kind, str(model_dir), options) for _ in range(replicas)]
        start = time.perf_counter()
        try:
            facts = ray.get([a.describe.remote() for a in self.actors], timeout=startup_timeout)
        except ray.exceptions.GetTimeoutError:
            for a in self.actors:  # never started: nothing to shut down gracefully
                ray.kill(a)
            raise TimeoutError(
                f"{replicas} engine actors ({cpus_per_replica} CPU, {gpus_per_replica} GPU each) did not start within "
                f"{startup_timeout:.0f} s; the cluster has {ray.available_resources()} free of "
                f"{ray.cluster_resources()}") from None
        self.startup_seconds = time.perf_counter() - start
        self.name = f"ray:{replicas}x{facts[0]['name']}"
        self.tokenizer = facts[0]["tokenizer"]
        self.context_len = facts[0]["context_len"]
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """Each actor samples a contiguous slice; prompt i keeps its seed (global index `offset + i`)."""
        import ray

        start = time.perf_counter()
        slices = balanced_slices(len(prompts), len(self.actors))
        refs = [a.generate.remote(list(prompts[lo:hi]), spec, offset + lo) for a, (lo, hi) in zip(self.actors, slices)]
        parts = ray.get(refs)
        out = [row for samples, _ in parts for row in samples]
        seconds, generated = time.perf_counter() - start, sum(s.num_tokens for row in out for s in row)
        self.stats.requests += len(prompts)
        self.stats.samples += sum(len(row) for row in out)
        self.stats.prompt_tokens += sum(tokens for _, tokens in parts)
        self.stats.generated_tokens += generated
        self.stats.seconds += seconds
        self.stats.calls.append({"requests": len(prompts), "generated_tokens": generated, "seconds": round(seconds, 3),
                                 "actors": len(slices)})
        return out

    def close(self) -> None:
        """Shut every engine down, then kill its actor (a hung engine must not outlive the run)."""
        import ray

        actors, self.actors = getattr(self, "actors", []), []
        if actors:
            try:
                ray.get([a.close.remote() for a in actors], timeout=60)
            except Exception:  # an actor that died or hangs is killed below all the same
                pass
        for a in actors:
            ray.kill(a)
