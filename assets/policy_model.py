"""`policy_model`: the tiny Llama policy, trained from scratch on reference solutions (or a pretrained one)."""


import hashlib
import json
from dataclasses import asdict
from dataclasses import fields as dataclass_fields

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, cost, files_written, is_current, mark_current, preview, table
from assets.common.resources import DomainResource, GeneratorResource, StorageResource
from prm_core.generation.policy import PolicyConfig
from prm_core.lineage.summary import summary_path, update_summary

CODE_VERSION = "2"  # 2: a warmup-stable-decay schedule (PolicyConfig.decay_fraction)


POLICY = PolicyConfig()


class PolicyModelConfig(dg.Config):
    pretrained: str = Field(default="", description="use this model directory instead of training one (real models, GPU runs)")
    hidden_size: int = POLICY.hidden_size
    num_layers: int = POLICY.num_layers
    num_heads: int = POLICY.num_heads
    intermediate_size: int = POLICY.intermediate_size
    train_steps: int = Field(default=POLICY.train_steps, description="optimizer steps (not seconds: below ~900 the policy is useless)")
    batch_size: int = POLICY.batch_size
    lr: float = POLICY.lr
    seed: int = POLICY.seed
    eval_problems: int = Field(default=500, description="held-out problems for the accuracy estimate")
    max_new_tokens: int = 192
    precision: str = Field(default=POLICY.precision, description="auto | bf16 | fp32: auto is bf16 only where the "
                                                                       "hardware runs it natively (runtime/device.py)")
    reuse: bool = Field(default=True, description="keep a trained model whose config and code are unchanged")


@dg.asset(
    code_version=CODE_VERSION,
    group_name="generation",
    kinds={"pytorch", "transformers"},
    description="Tokenizer + tiny Llama policy (safetensors, save_pretrained), with held-out accuracy at T=1.",
)
def policy_model(
    context: dg.AssetExecutionContext,
    config: PolicyModelConfig,
    storage: StorageResource,
    domain: DomainResource,
    generator: GeneratorResource,
) -> dg.MaterializeResult:
    from prm_core.domains import has_exact_labeller
    from prm_core.evaluation.policy_eval import evaluate_policy
    from prm_core.generation.policy import save_policy, tokenizer_corpus, train_policy
    from prm_core.generation.tokenizer import build_tokenizer
    from prm_core.lineage.run_info import read_run_info, update_run_info
    from prm_core.lineage.storage import md5_dir

    dom = domain.get()
    path = storage.model_dir("policy") if not config.pretrained else config.pretrained
    cfg = PolicyConfig(**{k: v for k, v in config.model_dump().items() if k in {f.name for f in dataclass_fields(PolicyConfig)}})
    fingerprint = {"code_version": CODE_VERSION, "policy": asdict(cfg), "domain": domain.fingerprint()}
    train_meta: dict = {}
    train_seconds: float | None = 0.0  # a pretrained policy: no training here
    if config.pretrained:
        context.log.info(f"using the pretrained policy at {config.pretrained}")
    elif config.reuse and is_current(path / "model.safetensors", fingerprint):
        context.log.info(f"policy unchanged (same config and code): reusing {path}")
        recorded = read_run_info(path)  # the training's report and seconds, as they were when it was trained
        train_meta, train_seconds = {"reused": True, **recorded.get("train", {})}, recorded.get("train_seconds")
    else:
        if not has_exact_labeller(dom):
            raise ValueError(f"domain {dom.name!r} has no reference solutions to train a policy on; give a model: config `pretrained` (`prm run --policy DIR`)")
        with Timer() as t:
            tokenizer = build_tokenizer(tokenizer_corpus(dom, cfg.tokenizer_texts, seed=cfg.seed + 1))
            model, report = train_policy(dom, tokenizer, cfg)
            save_policy(model, tokenizer, cfg, path)
        train_meta, train_seconds = {"reused": False, **asdict(report)}, round(t.seconds, 2)
        # timings differ between runs: the model folder's run record (md5_dir, the fingerprint ignore it)
        update_run_info(path, {"train": asdict(report), "train_seconds": train_seconds, "dagster_run_id": context.run_id})
        mark_current(path / "model.safetensors", fingerprint)
    storage.set_model("policy", path)
    engine = generator.get(path)
    if not has_exact_labeller(dom):  # real data: accuracy is measured on the pool by `rollouts`
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(path)), "engine": engine.name,
            "evaluation": "none here: the domain has no held-out generator; see rollouts' accuracy",
            "train": dg.MetadataValue.json(json.loads(json.dumps(train_meta, default=str))),
            **cost(train_seconds), **files_written(storage, [path])})
    with Timer() as t_eval:
        ev = evaluate_policy(dom, engine, config.eval_problems, seed=config.seed, max_new_tokens=config.max_new_tokens)
    trained = {"policy.train_seconds": train_seconds, "policy.final_loss": train_meta["final_loss"],
               "policy.precision": train_meta.get("precision", "unrecorded")} if "final_loss" in train_meta else {}
    update_summary(storage.base_dir, {"policy.accuracy": ev.accuracy, "policy.greedy_accuracy": ev.greedy_accuracy,
                                      "policy.eval_problems": config.eval_problems, **trained})
    samples = ev.samples.select("problem_id", "response", "correct", "first_error", "first_error_kind")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "model_md5": md5_dir(path),
            "accuracy_t1": ev.accuracy,
            "accuracy_greedy": ev.greedy_accuracy,
            "accuracy_by_steps": table(pl.DataFrame(ev.by_steps)),
            "first_error_kinds": table(pl.DataFrame(ev.first_error_kinds)) if ev.first_error_kinds else "none",
            "mid_solution_error_share": ev.mid_solution_error_share,
            "max_generated_tokens": ev.max_tokens,
            "truncated_samples": ev.truncated,
            "train": dg.MetadataValue.json(json.loads(json.dumps(train_meta, default=str))),
            "config_hash": hashlib.md5(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest(),
            "engine": engine.name,
            "eval_samples": preview(samples, n=8, max_chars=200),
            "eval_seconds": round(t_eval.seconds, 2),
            # training (a kept policy's as recorded when trained) and this run's evaluation, which is always run
            **cost(None if train_seconds is None else train_seconds + t_eval.seconds, generated_tokens=ev.generated_tokens,
                   rollouts=2 * config.eval_problems),
            **files_written(storage, [path, summary_path(storage.base_dir)]),
        }
    )
