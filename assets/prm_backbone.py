"""`prm_backbone`: the PRM's own LM — the policy pre-trained further so that it re-derives results."""

import json
from dataclasses import asdict

import dagster as dg
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, is_current, mark_current
from assets.common.resources import DomainResource, StorageResource
from prm_core.lineage.summary import summary_path, update_summary
from prm_core.prm.backbone import BackboneConfig

CODE_VERSION = "3"  # 2: records its training tokens (train_report.json) for the FLOPs; 3: the policy's WSD schedule


class PrmBackboneConfig(dg.Config):
    train_steps: int = Field(default=BackboneConfig.train_steps, description="extra optimizer steps on fresh reference solutions")
    lr: float = BackboneConfig.lr
    seed: int = BackboneConfig.seed
    precision: str = Field(default=BackboneConfig.precision, description="auto | bf16 | fp32 (runtime/device.py)")
    pretrained: str = Field(default="", description="a local causal-LM directory (any architecture: Llama, Qwen2, "
                                                    "Mistral, Gemma, ...) to use as the PRM backbone instead")
    reuse: bool = Field(default=True, description="keep a backbone made from the same policy, config and code")


@dg.asset(
    deps=["policy_model"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"pytorch", "transformers"},
    description="The policy trained further on reference solutions: the LM whose token judgements the PRM reads.",
)
def prm_backbone(context: dg.AssetExecutionContext, config: PrmBackboneConfig, storage: StorageResource,
                 domain: DomainResource) -> dg.MaterializeResult:
    from prm_core.domains import has_exact_labeller
    from prm_core.generation.policy import save_policy
    from prm_core.lineage.run_info import read_with_run_info, update_run_info
    from prm_core.lineage.storage import local_copy, md5_dir, write_json
    from prm_core.prm.backbone import train_backbone

    dom = domain.get()
    policy = storage.model("policy")
    if config.pretrained:  # the user's own backbone: the PRM reads its judgements, the policy only generates
        storage.set_model("prm_backbone", config.pretrained)
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(config.pretrained), "trained": False,
                                              **cost(0.0), **files_written(storage, [config.pretrained])})
    if not has_exact_labeller(dom):  # a real policy: no reference solutions to continue on; it is its own backbone
        storage.set_model("prm_backbone", policy)
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(policy)), "trained": False, **cost(0.0),
                                              **files_written(storage, [])})
    cfg = BackboneConfig(train_steps=config.train_steps, lr=config.lr, seed=config.seed, precision=config.precision)
    path = storage.model_dir("prm_backbone")
    fingerprint = {"code_version": CODE_VERSION, "backbone": asdict(cfg), "policy_md5": md5_dir(policy),
                   "domain": domain.fingerprint()}
    report = None
    with Timer() as t:
        if config.reuse and is_current(path / "model.safetensors", fingerprint):
            context.log.info(f"PRM backbone unchanged: reusing {path}")
        else:
            model, tokenizer, pcfg, report = train_backbone(local_copy(policy), dom, cfg)
            save_policy(model, tokenizer, pcfg, path)
            recorded = asdict(report)
            timing = {k: recorded.pop(k) for k in ("seconds", "tokens_per_s")}  # run info: the report stays reproducible
            write_json(recorded, path / "train_report.json")  # its tokens are part of every MC PRM's FLOPs
            update_run_info(path, timing)
            mark_current(path / "model.safetensors", fingerprint)
    storage.set_model("prm_backbone", path)
    # a kept backbone: its report and seconds as recorded when it was trained
    train = asdict(report) if report else read_with_run_info(path, "train_report.json")
    update_summary(storage.base_dir, {"prm_backbone.precision": train.get("precision", "unrecorded")})
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "reused": report is None,
        "train": dg.MetadataValue.json(json.loads(json.dumps(train, default=str))),
        "config": dg.MetadataValue.json(asdict(cfg)),
        **cost(t.seconds if report else train.get("seconds")),
        **files_written(storage, [path, summary_path(storage.base_dir)]),
    })
