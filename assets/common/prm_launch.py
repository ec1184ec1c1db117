"""Where `prm_model` trains outside its own process: `accelerate launch` processes on this machine, or a Ray job on
the cluster in `RAY_ADDRESS`, both through Dagster Pipes and both running `assets.common.prm_train_job` on a params
file in a work folder under the storage's model dir (a UPath, so a job on another node reads and writes it)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.common.paths import project_root
from assets.common.resources import StorageResource

ENTRY = ["-m", "assets.common.prm_train_job"]


def accelerate_command(accelerate: str, num_processes: int, cpu: bool) -> list[str]:
    """`accelerate launch` of the training job with `num_processes` processes (one per GPU; gloo ones on CPU)."""
    command = [accelerate, "launch", "--num_processes", str(num_processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no"]
    if num_processes > 1:
        command += ["--multi_gpu"]  # torchrun: one process per GPU (gloo processes on a CPU-only machine)
    elif cpu:
        command += ["--cpu"]
    return command + ENTRY


def ray_resources(num_processes: int, gpus_per_process: float, cpus_per_process: float) -> dict:
    """The Ray job's entrypoint resources: the GPUs and CPUs of all its processes (no GPU key when training on CPU)."""
    wanted = {"entrypoint_num_cpus": num_processes * cpus_per_process}
    return wanted | ({"entrypoint_num_gpus": num_processes * gpus_per_process} if gpus_per_process > 0 else {})


def launch_training(context: dg.AssetExecutionContext, storage: StorageResource, label_set: str, cfg, config):
    """Train the PRM of `label_set` with `config.launcher` (accelerate or ray); the job's logs stream into this run
    and its metrics come back as a Pipes message. Returns (model, losses, metrics); the work folder is removed."""
    from prm_core.lineage.storage import absolute, write_json
    from prm_core.prm.discriminative import load_prm

    # absolute local paths: a Ray job runs in a working dir of its own
    work = absolute(storage.model_dir("prm") / f".train-{label_set}-{context.run_id}")
    params = {"backbone": str(absolute(storage.model("prm_backbone"))),
              "corpus": str(absolute(storage.table("filtered_corpus", label_set))),
              "train": asdict(cfg), "separator": config.separator, "features": config.features,
              "hidden_term": config.hidden_term, "out": str(work / "out")}
    write_json(params, work / "params.json")
    try:
        if config.launcher == "ray":
            metrics = _on_ray(context, config, str(work / "params.json"))
        else:
            metrics = _with_accelerate(context, config, str(work / "params.json"))
        return load_prm(work / "out"), json.loads((work / "out" / "losses.json").read_text()), metrics
    finally:
        if work.exists():
            work.fs.rm(work.path, recursive=True)


def _with_accelerate(context, config, params_file: str) -> dict:
    """`accelerate launch` processes on this machine (multi-GPU by accelerate's config)."""
    from prm_core.runtime.device import on_gpu

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    command = accelerate_command(accelerate, config.num_processes, cpu=not on_gpu()) + [params_file]
    invocation = dg.PipesSubprocessClient().run(command=command, context=context, cwd=str(project_root()))
    return _metrics(invocation)


def _on_ray(context, config, params_file: str) -> dict:
    """A Ray job (dagster-ray's Pipes client) on the cluster in `RAY_ADDRESS`, the generator's Ray placement's choice;
    the project's code travels as the job's working dir. One process runs as plain `python -m` (the node's own
    device decides, no launcher to start); several through `accelerate launch` on the job's node."""
    from dagster_ray import PipesRayJobClient

    if config.num_processes > 1:
        command = accelerate_command("accelerate", config.num_processes, cpu=False)  # the node's GPUs, or gloo on CPU
    else:
        command = ["python", *ENTRY]
    submit = {"entrypoint": shlex.join(command + [params_file]),
              "runtime_env": {"working_dir": str(project_root())},  # .git, .venv and .gitignore'd files stay here
              **ray_resources(config.num_processes, config.ray_gpus_per_process, config.ray_cpus_per_process)}
    invocation = PipesRayJobClient(poll_interval=0.5).run(context=context, submit_job_params=submit)
    return _metrics(invocation) | {"ray_job_id": invocation.metadata["Ray Job ID"].value}


def _metrics(invocation) -> dict:
    """The metrics the job reported (its one custom message)."""
    return {k: v for m in invocation.get_custom_messages() if isinstance(m, dict) for k, v in m.items()}
