"""A real `vllm serve` for the tests (started once per session by the `vllm_server` fixture) and the fault proxy
(`fault_proxy.py`) put in front of it."""

import contextlib
import subprocess
import sys
from pathlib import Path

from prm_core.generation.vllm_server import VllmServer

PROXY = Path(__file__).with_name("fault_proxy.py")
STARTUP_TIMEOUT_S = 300.0  # ~40-70 s on 2 CPU cores (inductor's cache warm or not); a hung start fails with its log


@contextlib.contextmanager
def served(model_dir: Path, log_dir: Path):
    """`vllm serve model_dir` on a free 127.0.0.1 port, at the tests' small sizes, stopped by PID on exit."""
    server = VllmServer(model_dir, max_model_len=512, max_num_seqs=64, kv_cache_gib=1,
                        log_path=log_dir / "vllm-serve.log", startup_timeout_s=STARTUP_TIMEOUT_S)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def fault_proxy(server: VllmServer, fail: tuple[int, ...] = (), die_at: int | None = None):
    """The proxy in front of `server` (see fault_proxy.py): yields (its base_url, its process)."""
    cmd = [sys.executable, str(PROXY), "--upstream", f"http://{server.host}:{server.port}",
           "--fail", ",".join(map(str, fail))] + (["--die-at", str(die_at)] if die_at is not None else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.kill()
        proc.wait()
