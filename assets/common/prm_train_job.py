"""One PRM training in processes of its own: `accelerate launch [--num_processes N] -m assets.common.prm_train_job
PARAMS.json` (or `python -m ...` for one process in a Ray job), started by the `prm_model` asset through Dagster Pipes
(launchers `accelerate` and `ray`, assets/common/prm_launch.py). PARAMS.json and the paths in it may be fsspec URLs.

Every process reads PARAMS.json (backbone, corpus, training config, output folder) and runs the same
`prm_core` training; accelerate makes fine-tuning data-parallel across them (DDP, or FSDP/DeepSpeed from its
config). Process 0 writes the model and its loss curve to the output folder and, when Dagster started it,
streams its logs and metrics back to the asset through Pipes. No dagster import: only `dagster_pipes`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time


def train(params: dict, log) -> dict:
    """Train the PRM described by `params`; process 0 saves it. Returns the metrics of this process."""
    from transformers import AutoTokenizer

    from prm_core.lineage.storage import atomic_dir, local_copy, read_parquet
    from prm_core.prm.corpus import examples
    from prm_core.prm.discriminative import PRMTrainConfig, init_prm, train_prm

    cfg = PRMTrainConfig(**params["train"])
    backbone = local_copy(params["backbone"])  # a model in object storage is copied to this node
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model = init_prm(backbone, tokenizer, params["separator"], seed=cfg.seed, features=params["features"],
                     hidden_term=params.get("hidden_term", False))
    corpus = read_parquet(params["corpus"])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    log.info(f"training a PRM on {corpus.height} sequences in {world} process(es), {cfg.steps} steps")
    start = time.perf_counter()
    losses = train_prm(model, tokenizer, examples(corpus), params["separator"], cfg)
    seconds = time.perf_counter() - start
    from prm_core.prm.discriminative import training_precision
    from prm_core.runtime.device import default_device

    metrics = {"world_size": world, "train_seconds": round(seconds, 2),  # the loss curve goes to losses.json
               "precision": training_precision(cfg, default_device())}
    if int(os.environ.get("RANK", "0")) == 0:
        with atomic_dir(params["out"]) as out:  # a local folder or a UPath (uploaded when remote)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            (out / "losses.json").write_text(json.dumps(losses))
            (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def main(argv: list[str]) -> int:
    from prm_core.lineage.storage import as_path

    params = json.loads(as_path(argv[0]).read_text())
    pipes_wanted = int(os.environ.get("RANK", "0")) == 0 and "DAGSTER_PIPES_CONTEXT" in os.environ
    if pipes_wanted:
        from dagster_pipes import open_dagster_pipes

        session = open_dagster_pipes()
    else:
        session = contextlib.nullcontext()
    with session as pipes:
        log = pipes.log if pipes is not None else logging.getLogger("prm_train_job")
        metrics = train(params, log)
        if pipes is not None:
            pipes.report_custom_message(metrics)
            log.info(f"PRM trained: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
