"""`prm_model`: one discriminative PRM per label set, trained on its `filtered_corpus`, tracked in MLflow."""

import json
from dataclasses import asdict
from typing import Literal

import dagster as dg
from pydantic import Field

from assets.common.metadata import Timer, is_current, mark_current, record_partition
from assets.common.models import PRM_EXPERIMENT, PRM_REGISTERED, mlflow_ui, prm_dir, register, training_info
from assets.common.partitions import label_set_backfill, label_sets
from assets.common.prm_launch import launch_training
from assets.common.resources import StorageResource, TrackingResource
from prm_core.lineage.summary import update_summary
from prm_core.prm.discriminative import PRMTrainConfig

CODE_VERSION = "3"  # 2: the PRM wraps any causal LM (features optional); 3: the hidden-state term optional, off
TRAIN = PRMTrainConfig()
RUN_SPECIFIC = ("train_seconds", "ray_job_id")  # a launched job's metrics kept out of training.json (reproducible)


class PrmModelConfig(dg.Config):
    steps: int = Field(default=TRAIN.steps, description="optimizer steps")
    batch_size: int = TRAIN.batch_size
    lr_head: float = TRAIN.lr_head
    lr_body: float = TRAIN.lr_body
    freeze_backbone: bool = Field(default=TRAIN.freeze_backbone, description="train the head only (testbed-probe.md §9: fine-tuning re-adds the difficulty prior)")
    features: bool = Field(default=True, description="add the LM's own log-prob features to the head (ships modeling code; "
                                                      "off: the stock <Arch>ForTokenClassification)")
    hidden_term: bool = Field(default=False, description="features PRM: add w·h (hidden states) to the step logit; off, the "
                                                         "head cannot learn the label set's problem-difficulty prior (modeling_prm.py)")
    gradient_checkpointing: bool = Field(default=TRAIN.gradient_checkpointing, description="fine-tuning: recompute activations (7B+ backbones)")
    lora_rank: int = Field(default=TRAIN.lora_rank, description="fine-tuning: train LoRA adapters of this rank (peft) instead of every weight")
    precision: str = Field(default=TRAIN.precision, description="auto | bf16 | fp32: auto is bf16 only where the "
                                                                          "hardware runs it natively (runtime/device.py)")
    launcher: Literal["in_process", "accelerate", "ray"] = Field(default="in_process", description="in_process; accelerate: "
                                                                 "train in `accelerate launch` processes on this machine (multi-GPU by "
                                                                 "accelerate's config); ray: as a Ray job on the cluster in RAY_ADDRESS "
                                                                 "(assets/common/prm_launch.py); both through Dagster Pipes")
    num_processes: int = Field(default=1, description="accelerate and ray launchers: processes (one per GPU)")
    ray_gpus_per_process: float = Field(default=1.0, description="ray launcher: GPUs the job reserves per process (0: on CPU)")
    ray_cpus_per_process: float = Field(default=1.0, description="ray launcher: CPUs the job reserves per process")
    seed: int = TRAIN.seed
    separator: str = Field(default="\n", description="step separator appended as one token id after each step")
    reuse: bool = Field(default=True, description="keep a model trained on the same corpus, backbone, config and code")


@dg.asset(
    partitions_def=label_sets,
    backfill_policy=label_set_backfill,
    deps=["filtered_corpus", "prm_backbone"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"pytorch", "transformers", "mlflow"},
    description="AutoModelForTokenClassification (num_labels=1) per label set: step score σ(logit) at each separator.",
)
def prm_model(context: dg.AssetExecutionContext, config: PrmModelConfig, storage: StorageResource,
              tracking: TrackingResource) -> dg.MaterializeResult:

    from transformers import AutoTokenizer

    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, frame_md5, local_copy, md5_dir, read_parquet
    from prm_core.prm.corpus import examples
    from prm_core.prm.discriminative import init_prm, train_prm, training_precision
    from prm_core.prm.encoding import encode_many, separator_id
    from prm_core.runtime.device import default_device

    cfg = PRMTrainConfig(steps=config.steps, batch_size=config.batch_size, lr_head=config.lr_head, lr_body=config.lr_body,
                         freeze_backbone=config.freeze_backbone, seed=config.seed,
                         gradient_checkpointing=config.gradient_checkpointing, lora_rank=config.lora_rank,
                         precision=config.precision)
    backbone = local_copy(storage.model("prm_backbone"))
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    backbone_md5 = md5_dir(backbone)
    for label_set in context.partition_keys:
        corpus = read_parquet(storage.table("filtered_corpus", label_set))
        path = prm_dir(storage, label_set)
        if corpus.is_empty():
            context.log.warning(f"empty training corpus for {label_set!r}: no PRM (see filtered_corpus)")
            _record(context, storage, label_set, {"trained": False, "reason": "empty corpus"}, seconds=0.0)
            continue
        fingerprint = {"code_version": CODE_VERSION, "train": asdict(cfg), "separator": config.separator,
                       "features": config.features, "hidden_term": config.hidden_term, "processes": config.num_processes if config.launcher != "in_process" else 1,
                       "corpus": frame_md5(corpus), "backbone": backbone_md5}
        if config.reuse and is_current(path / "model.safetensors", fingerprint):
            context.log.info(f"PRM {label_set} unchanged: reusing {path}")
            _record(context, storage, label_set, {"reused": True, **training_info(path)})  # the cost it had
            continue
        launched = {}
        with Timer() as t:
            if config.launcher != "in_process":
                model, losses, launched = launch_training(context, storage, label_set, cfg, config)
            else:
                model = init_prm(backbone, tokenizer, config.separator, seed=config.seed, features=config.features,
                                 hidden_term=config.hidden_term)
                losses = train_prm(model, tokenizer, examples(corpus), config.separator, cfg)
        encoded = encode_many(tokenizer, corpus["prompt"].to_list(), corpus["steps"].to_list(),
                              separator_id(tokenizer, config.separator), cfg.max_length)
        info = {"label_set": label_set, "sequences": corpus.height, "steps_labelled": int(corpus["steps"].list.len().sum()),
                "corpus_tokens": sum(len(e.input_ids) for e in encoded),  # the frozen feature forward's tokens (FLOPs)
                "hard_negatives": int((corpus["source"] == "hard_negative").sum()),
                "loss_first": sum(losses[:20]) / max(1, len(losses[:20])), "loss_last": sum(losses[-50:]) / max(1, len(losses[-50:])),
                "features": config.features, "hidden_term": config.hidden_term, "launcher": config.launcher,
                "precision": launched.get("precision") or training_precision(cfg, default_device()),
                **{k: v for k, v in launched.items() if k not in RUN_SPECIFIC}}
        run_info = {"train_seconds": round(t.seconds, 2), **{k: launched[k] for k in RUN_SPECIFIC if k in launched},
                    "dagster_run_id": context.run_id}
        if config.features:
            info["feature_weights"] = [round(w, 4) for w in model.feature_score.weight[0].tolist()]
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            logged = register(
                tracking, PRM_EXPERIMENT, f"prm-{label_set}", ("discriminative", {"prm": tmp}, {"separator": config.separator},
                                                             (corpus["prompt"][0], corpus["steps"][0].to_list())),
                PRM_REGISTERED.format(label_set=label_set), context.run_id, f"PRM trained on {label_set} labels",
                tags={"label_set": label_set},
                params={**asdict(cfg), "label_set": label_set, "sequences": info["sequences"],
                        "hard_negatives": info["hard_negatives"], "backbone": str(storage.model("prm_backbone"))},
                metrics={"train_seconds": t.seconds, "loss_last": info["loss_last"]}, curve=losses, every=10)
            info["mlflow_model"] = logged.pop("mlflow_model")
            run_info.update(logged, mlflow_ui=mlflow_ui(logged["mlflow_run_id"]))
            (tmp / "training.json").write_text(json.dumps(info, indent=2))
            update_run_info(tmp, run_info)
        mark_current(path / "model.safetensors", fingerprint)
        _record(context, storage, label_set, {"reused": False, **info, **run_info})
    return dg.MaterializeResult()


def _record(context, storage: StorageResource, label_set: str, training: dict, seconds: float | None = None) -> None:
    """One label set's metadata: its training (a kept model's as recorded when trained), cost, MLflow run, files;
    the precision it trained at in the summary (`prm.<set>.precision`)."""
    if "precision" in training:
        update_summary(storage.base_dir, {f"prm.{label_set}.precision": training["precision"]})
    extra = {"mlflow": dg.MetadataValue.url(training["mlflow_ui"])} if training.get("mlflow_ui") else {}
    extra |= {k: training[k] for k in ("reused", "loss_first", "loss_last") if k in training}
    record_partition(context, storage, label_set, None, [prm_dir(storage, label_set)],
                     training.get("train_seconds") if seconds is None else seconds,
                     path=dg.MetadataValue.path(str(prm_dir(storage, label_set))),
                     training=dg.MetadataValue.json(json.loads(json.dumps(training, default=str))), **extra)


def loss_violations(per_set: dict[str, dict]) -> list[str]:
    """Label sets whose recorded training loss (mean of the first 20 steps, of the last 50) is not a finite number."""
    import math

    def finite(v) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    return [f"{s}: loss_first {i.get('loss_first')}, loss_last {i.get('loss_last')}" for s, i in per_set.items()
            if not (finite(i.get("loss_first")) and finite(i.get("loss_last")))]


@dg.asset_check(asset=prm_model, blocking=True,
                description="each PRM of the run trained to a finite loss, as its training.json records (blocks downstream)")
def training_loss_finite(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """The run's label sets (all of them when the check runs alone); one with an empty corpus has no PRM to check."""
    keys = context.partition_keys if context.has_partition_key_range or context.has_partition_key else label_sets.get_partition_keys()
    trained = {s: training_info(prm_dir(storage, s)) for s in keys if (prm_dir(storage, s) / "training.json").exists()}
    problems = loss_violations(trained)
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR, metadata={
        "checked": dg.MetadataValue.json(sorted(trained)), "problems": dg.MetadataValue.json(problems)})
