"""Resources: where data lives, which domain the run is about, and the generation engine (created lazily, once
per run and model, closed when the run ends)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr
from upath import UPath


def default_data_dir() -> str:
    return os.environ.get("PRM_DATA_DIR", "data")


class StorageResource(dg.ConfigurableResource):
    """The data root (a local folder or any fsspec URL): tables under `<asset>/<shard>.parquet`, models under
    `models/<name>/`, reports under `reports/`."""

    base_dir: str = "data"

    _lock: object = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run holds its data dir's writer lock while it runs (`lock.run_lock`): one that `prm run` did not launch
        (the UI's, the daemon's) refuses at once while another writer has the data dir."""
        import contextlib

        from assets.common.lock import run_lock
        from prm_core.lineage.storage import is_local

        if context.dagster_run is not None and is_local(self.root):  # object storage has no lock (lock.py)
            self._lock = contextlib.ExitStack()
            self._lock.enter_context(run_lock(self.root, context.dagster_run))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.close()

    @property
    def root(self) -> UPath:
        return UPath(self.base_dir)

    def table(self, asset: str, shard: str | None = None) -> UPath:
        return self.root / asset / f"{shard}.parquet" if shard else self.root / f"{asset}.parquet"

    def shard_tables(self, asset: str, keys: list[str]) -> list[UPath]:
        """The tables of these shards (the partition set, never a glob: a stray file is not read), those that exist
        here (a key can be a shard of another data dir)."""
        return sorted(p for p in (self.table(asset, k) for k in keys) if p.exists())

    def data_dir(self) -> UPath:
        """The data dir made absolute (resolved when local): what materializations record and releases match."""
        from prm_core.lineage.storage import absolute

        return absolute(self.root)

    def relative(self, path) -> str | None:
        """`path` relative to the data dir (posix), or None when it lies outside it."""
        from prm_core.lineage.storage import absolute

        prefix, name = str(self.data_dir()).rstrip("/") + "/", str(absolute(path))
        return name[len(prefix):] if name.startswith(prefix) else None

    def model_dir(self, name: str) -> UPath:
        return self.root / "models" / name

    def set_model(self, name: str, path) -> None:
        """Record where model `name` lives: relative to the data dir when inside it (a copied data dir reads its own
        models), absolute for a model elsewhere (a pretrained checkpoint)."""
        from prm_core.lineage.storage import absolute, write_json

        inside = self.relative(path)
        recorded = inside if inside is not None else str(absolute(path))
        write_json({"path": recorded}, self.root / "models" / f"{name}.json")

    def model(self, name: str):
        """Where model `name` lives, as recorded by the asset that made it (a relative path: in this data dir)."""
        from prm_core.lineage.storage import model_path

        return model_path(self.root, name)


class DomainResource(dg.ConfigurableResource):
    """The problem domain of the run: `arith` (the exact testbed, with its generator knobs) or `gsm8k`/`math`."""

    name: str = "arith"
    min_steps: int = 2
    max_steps: int = 6
    max_num: int = 20

    def get(self):
        from prm_core.domains import get_domain

        if self.name == "arith":
            return get_domain("arith", min_steps=self.min_steps, max_steps=self.max_steps, max_num=self.max_num)
        return get_domain(self.name)

    def fingerprint(self) -> dict:
        return {"name": self.name, "min_steps": self.min_steps, "max_steps": self.max_steps, "max_num": self.max_num}


class GeneratorResource(dg.ConfigurableResource):
    """The generation engine: `auto` (`engines.auto_engine`), `vllm`, `transformers` or `openai` (a server started
    elsewhere, e.g. `vllm serve`), with vLLM's settings (used on GPU; the CPU build takes its KV cache size from
    `kv_cache_gib`) and the server's (`base_url`, `served_model`, `api_key_env`, `max_concurrency`)."""

    engine: str = Field(default="auto", description="auto (vLLM on a GPU or for big models, transformers for small "
                                                    "ones on a CPU), vllm, transformers, or openai (an OpenAI-compatible "
                                                    "completions server at base_url; never chosen by auto)")
    base_url: str = Field(default="", description="openai: the server's API root, e.g. http://127.0.0.1:8000/v1")
    served_model: str = Field(default="", description="openai: the model name the server serves (empty: its only one); "
                                                      "the policy dir still gives the tokenizer")
    api_key_env: str = Field(default="", description="openai: NAME of the environment variable holding the API key (the "
                                                     "key itself is never in config); empty: no key")
    max_concurrency: int = Field(default=8, description="openai: requests in flight at once")
    max_retries: int = Field(default=4, description="openai: retries of a request on 429/5xx/timeouts, backoff doubling")
    timeout_s: float = Field(default=120.0, description="openai: seconds one request may take")
    batch_size: int = Field(default=256, description="transformers engine: sequences decoded together")
    max_model_len: int = Field(default=512, description="vLLM: prompt + generation tokens per sequence")
    max_num_seqs: int = Field(default=512, description="vLLM: sequences scheduled at once")
    kv_cache_gib: int = Field(default=2, description="vLLM CPU build: KV cache size (VLLM_CPU_KVCACHE_SPACE)")
    gpu_memory_utilization: float = Field(default=0.3, description="vLLM on GPU: share of GPU memory it may take")
    tensor_parallel_size: int = Field(default=1, description="vLLM on GPU: GPUs one engine spans (one model too big for one)")
    dtype: str = Field(default="", description="vLLM: weights dtype; empty = the checkpoint's (bf16) on GPU, float32 on CPU")
    in_process: bool | None = Field(default=None, description="vLLM: run the engine core in this process (default: on "
                                    "CPU, where it starts faster; on GPU a core process of its own overlaps scheduling)")
    enable_prefix_caching: bool = Field(default=True, description="vLLM: reuse KV of shared prefixes (MC rollouts share "
                                                                  "every step prefix of a response)")
    placement: Literal["local", "ray"] = Field(default="local", description="local: one engine in this process (Ray "
                                               "not imported); ray: a pool of Ray actors, one engine each")
    replicas: int = Field(default=1, description="ray: engine actors (vllm for more than one)")
    gpus_per_replica: float = Field(default=1.0, description="ray: GPUs per actor (tensor_parallel_size when it spans several)")
    cpus_per_replica: float = Field(default=1.0, description="ray: CPUs per actor (fractional leaves room for the driver)")
    ray_cluster: dg.ConfigurableResource | None = Field(default=None, description="ray: dagster-ray's cluster resource "
                                                        "(LocalRay, KubeRayCluster), connected before the engines start")

    _engines: dict = PrivateAttr(default_factory=dict)

    def get(self, model_dir) -> object:
        """The engine on `model_dir`, created on first use and kept for the rest of the run."""
        from prm_core.lineage.storage import absolute, local_copy

        local = local_copy(model_dir)
        # a cheap signature (no hashing on every call): a retrained model is written anew, so its files change
        key = (str(local), tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in local.iterdir() if f.is_file())))
        if key not in self._engines:
            for old in self._engines.values():
                old.close()
            self._engines.clear()
            # in this process the local copy made above; Ray actors, on nodes of their own, copy a remote model
            # themselves: they get its URL, or the local path made absolute
            where = local.resolve() if self.placement == "local" else str(absolute(model_dir))
            self._engines[key] = self._start(
                where,
                batch_size=self.batch_size,
                max_model_len=self.max_model_len,
                max_num_seqs=self.max_num_seqs,
                kv_cache_gib=self.kv_cache_gib,
                gpu_memory_utilization=self.gpu_memory_utilization,
                tensor_parallel_size=self.tensor_parallel_size,
                dtype=self.dtype,
                enable_prefix_caching=self.enable_prefix_caching,
                in_process=self.in_process,
                base_url=self.base_url,
                served_model=self.served_model,
                api_key_env=self.api_key_env,
                max_concurrency=self.max_concurrency,
                max_retries=self.max_retries,
                timeout_s=self.timeout_s,
            )
        return self._engines[key]

    def _start(self, model_dir, **options):
        """One engine in this process, or a pool of Ray actors on the cluster `ray_cluster` connected to."""
        if self.placement == "local":
            from prm_core.generation.engines import make_engine

            return make_engine(self.engine, model_dir, **options)
        from prm_core.generation.ray_pool import RayEnginePool

        if self.ray_cluster is None:
            raise ValueError("placement='ray' needs ray_cluster: a dagster-ray resource (LocalRay, KubeRayCluster)")
        return RayEnginePool(self.engine, model_dir, replicas=self.replicas, gpus_per_replica=self.gpus_per_replica,
                             cpus_per_replica=self.cpus_per_replica, **options)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()


class TrackingResource(dg.ConfigurableResource):
    """MLflow: `MLFLOW_TRACKING_URI` when set, else a sqlite store (`mlflow.db`, `mlartifacts/`) in `root`."""

    root: str = ""  # empty: the project checkout

    def experiment(self, name: str):
        """The mlflow module, pointed at the store and experiment `name`."""
        from assets.common.paths import project_root
        from assets.common.tracking import use_experiment

        if "://" in self.root:  # Path() of a URL would make a local folder named after its scheme
            raise ValueError(f"TrackingResource.root is a local folder for the sqlite store, got {self.root!r}; for "
                             "a remote store set MLFLOW_TRACKING_URI")
        return use_experiment(Path(self.root) if self.root else project_root(), name)
