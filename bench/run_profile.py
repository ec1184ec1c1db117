"""Where the default run's time goes on this CPU: `prm run` on a fresh data dir, its stage table, precision and CPU.

Runs the default pipeline (the command `make run` runs, with any `prm run` flags given after `--`) in a fresh
temporary data dir with its own Dagster instance and MLflow store, and prints: the run's wall seconds, the stage
table (`run.stage_seconds.<asset>`: seconds per asset and `other` for launches and start-up), the precision each
trainer used (`policy.precision`, `prm_backbone.precision`, `prm.<set>.precision`, `implicit.<loss>.precision`),
what torch reports of the CPU (capability, native bf16) and the headline numbers. `--avx2` runs it again with
torch and oneDNN held to AVX2 kernels (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`): the slow case of a CPU
without AVX512/AMX (bf16 emulated: `auto` trains in fp32), reproduced on one that has them. On a CPU the default
run generates with the transformers engine (our decode loop: `engines.auto_engine`), whose kernels are torch's and
follow the restriction; vLLM's CPU generation did not change under it (on a real AVX2-only EPYC it ran about as fast
as on an AVX512 one: vanilla MC 8.3k against 8.6k tok/s).

Usage: .venv/bin/python bench/run_profile.py [--avx2 | --avx2-only] [--keep DIR] [--json] [-- prm run flags]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from prm_core.lineage.summary import HEADLINE  # noqa: E402  (the numbers `prm run` ends with)

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}



def cpu_report(env: dict) -> dict:
    """What torch reports of this CPU under `env` (a fresh interpreter, so ATEN_CPU_CAPABILITY applies)."""
    code = ("import json, torch; from prm_core.runtime.device import cpu_has_native_bf16, resolve_precision; "
            "print(json.dumps({'cpu_capability': torch.backends.cpu.get_cpu_capability(), "
            "'avx512_bf16': bool(torch.cpu._is_avx512_bf16_supported()), 'amx': bool(torch.cpu._is_amx_tile_supported()), "
            "'native_bf16': cpu_has_native_bf16(), 'auto_precision': resolve_precision('auto', 'cpu'), "
            "'threads': torch.get_num_threads()}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def profile(restricted: bool, prm_args: list[str], keep: str | None) -> dict:
    """One `prm run` on a fresh data dir; its figures."""
    env = {**os.environ, **(AVX2 if restricted else {})}
    for k in ("PRM_DATA_DIR", "DAGSTER_HOME"):
        env.pop(k, None)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="prm-profile-"))
    if keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"  # the run's own store, not the checkout's
    prm = Path(sys.executable).with_name("prm")
    cmd = [str(prm), "run", "--data-dir", str(work / "data"), "--quiet", "--json", *prm_args]
    start = time.time()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"run_profile: `{' '.join(cmd)}` failed with exit code {proc.returncode}")
    summary = json.loads(proc.stdout)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    from prm_core.lineage.summary import stage_rows

    return {
        "restricted_to_avx2": restricted,
        **cpu_report(env),
        "run_seconds": round(wall, 1),
        "stage_seconds": dict(stage_rows(summary)),  # each stage once: renamed assets' old keys left out
        "precision": {k: v for k, v in sorted(summary.items()) if k.endswith(".precision")},
        "headline": {k: summary[k] for k in HEADLINE if k in summary},
    }


def print_profile(p: dict) -> None:
    print(f"\n== {'AVX2-restricted' if p['restricted_to_avx2'] else 'native'}: cpu capability {p['cpu_capability']}, "
          f"native bf16 {p['native_bf16']} (auto -> {p['auto_precision']}), {p['threads']} threads: "
          f"run {p['run_seconds']:.0f} s")
    total = sum(p["stage_seconds"].values()) or 1.0
    for name, s in sorted(p["stage_seconds"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {s:8.1f} s  {s / total:6.1%}")
    for k, v in p["precision"].items():
        print(f"  {k:<32} {v}")
    for k, v in p["headline"].items():
        print(f"  {k:<40} {v:.4f}" if isinstance(v, float) else f"  {k:<40} {v}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avx2", action="store_true", help="also run with torch/oneDNN held to AVX2 kernels")
    parser.add_argument("--avx2-only", action="store_true", help="only the AVX2-restricted run")
    parser.add_argument("--keep", default=None, help="keep the run's data dir here (replaced if it exists)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("prm_args", nargs=argparse.REMAINDER, help="after `--`: flags for `prm run`")
    args = parser.parse_args()
    prm_args = [a for a in args.prm_args if a != "--"]
    modes = [True] if args.avx2_only else ([False, True] if args.avx2 else [False])
    profiles = [profile(r, prm_args, f"{args.keep}-{'avx2' if r else 'native'}" if args.keep else None) for r in modes]
    if args.json:
        print(json.dumps(profiles if len(profiles) > 1 else profiles[0], indent=2))
    else:
        for p in profiles:
            print_profile(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
