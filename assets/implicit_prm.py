"""`implicit_prm`: one implicit PRM per outcome loss (CE, DPO, KTO, NCA), trained on the rollouts' outcome labels."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, is_current, mark_current, read_shards, record_partition, table
from assets.common.models import IMPLICIT_EXPERIMENT, IMPLICIT_REGISTERED, implicit_dir, implicit_info, register
from assets.common.partitions import all_shards, implicit_loss_backfill, implicit_losses
from assets.common.resources import DomainResource, StorageResource, TrackingResource
from prm_core.lineage.summary import update_summary
from prm_core.prm.implicit import ImplicitConfig

CODE_VERSION = "1"
ALL_SHARDS = dg.AllPartitionMapping()
TRAIN = ImplicitConfig()


class ImplicitPrmConfig(dg.Config):
    beta: float = Field(default=TRAIN.beta, description="β of ρ = β·log π_θ/π_ref (the paper's CE and DPO runs)")
    lr: float = Field(default=TRAIN.lr, description="peak lr, cosine to 0.1× (tiny policy; the paper's 8B runs use 5e-7)")
    epochs: int = TRAIN.epochs
    batch_size: int = Field(default=TRAIN.batch_size, description="responses (CE, KTO) or pairs (DPO, NCA) per step")
    responses_per_problem: int = Field(default=0, description="train on the first m responses of each question (1, 2, 4; "
                                                              "0 = all N of `rollouts`)")
    ce_sweep: list[int] = Field(default=[1, 2], description="CE only: also train on the first m responses per question for "
                                                               "each m (benchmark_scores plots them: more responses vs more questions)")
    coef: float = Field(default=0.0, description="score scale: Q_k = coef·Σδ (0: coef = β, so σ(Q_T) is the ORM's probability)")
    separator: str = Field(default="\n", description="step separator id appended after each step, as the other PRMs")
    seed: int = TRAIN.seed
    precision: str = Field(default=TRAIN.precision, description="auto | bf16 | fp32 (runtime/device.py)")
    reuse: bool = Field(default=True, description="keep a model trained on the same rollouts, policy, config and code")


def outcomes(storage: StorageResource, dom, m: int, keys: list[str]):
    """The rollouts' responses and outcome labels (the very responses the MC methods label), the first m per question
    (all with m = 0), and their generated tokens."""
    from prm_core.domains.problems import prompts_frame
    from prm_core.prm.implicit import outcomes_of

    roll = read_shards(storage.shard_tables("rollouts", keys)).sort("shard", "problem_id", "sample_index")
    if m > 0:
        roll = roll.filter(pl.col("sample_index") < m)
    prompts = dict(prompts_frame(dom, read_shards(storage.shard_tables("problem_pool", keys))).iter_rows())
    return outcomes_of(roll.select("problem_id", "steps", "correct").iter_rows(), prompts), int(roll["num_tokens"].sum())


def train_one(storage: StorageResource, dom, config: ImplicitPrmConfig, loss: str, m: int, out, keys: list[str],
              tracking=None, run_id: str = "") -> dict | None:
    """Train the implicit PRM of `loss` on the first m responses per question into `out`; its info (cost, MLflow),
    or None when there is nothing to train on."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.evaluation.flops import implicit_cost
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import atomic_dir, local_copy, md5_dir
    from prm_core.prm.card import implicit_card
    from prm_core.prm.implicit import train_implicit, trainable

    policy = local_copy(storage.model("policy"))
    cfg = ImplicitConfig(loss=loss, beta=config.beta, lr=config.lr, epochs=config.epochs, batch_size=config.batch_size,
                         seed=config.seed, precision=config.precision)
    data, response_tokens = outcomes(storage, dom, m, keys)
    questions = len({o.problem_id for o in data})
    if not trainable(data, loss):
        return None  # e.g. a policy that is never both right and wrong on one question: no DPO/NCA signal
    tokenizer = AutoTokenizer.from_pretrained(policy)
    theta, ref = AutoModelForCausalLM.from_pretrained(policy), AutoModelForCausalLM.from_pretrained(policy)
    with Timer() as t:
        losses, stats = train_implicit(theta, ref, tokenizer, data, config.separator, cfg)
    params = sum(p.numel() for p in theta.parameters())
    flops = implicit_cost(response_tokens, stats["tokens_trained"], stats["tokens_ref"], params)
    run_info = {"ref": str(storage.model("policy")), "train_seconds": round(t.seconds, 2), "dagster_run_id": run_id}
    info = {"loss": loss, "beta": cfg.beta, "coef": config.coef or cfg.beta, "separator": config.separator,
            "ref_md5": md5_dir(policy), "responses_per_problem": m or len(data) // max(1, questions),
            "response_tokens": response_tokens, "params": params, **stats,
            "loss_first": sum(losses[:10]) / max(1, len(losses[:10])), "loss_last": sum(losses[-10:]) / max(1, len(losses[-10:])),
            "flops": flops.total, "data_flops": flops.data, "train_flops": flops.training}
    with atomic_dir(out) as tmp:
        theta.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(implicit_card(
            per_problem=m or "all", pairs_note=f"{stats['pairs']} (correct, incorrect) pairs" if stats["pairs"] else
            "unpaired responses", **{k: info[k] for k in ("loss", "beta", "coef", "ref_md5", "separator", "responses",
                                                          "steps", "tokens_trained", "flops")},
            data_flops=flops.data, train_flops=flops.training))
        if tracking is not None:
            logged = register(
                tracking, IMPLICIT_EXPERIMENT, f"implicit-{loss}",
                ("implicit", {"theta": tmp, "ref": policy}, {"separator": config.separator, "coef": info["coef"]},
                 (data[0].prompt, data[0].steps)),
                IMPLICIT_REGISTERED.format(loss=loss), run_id, f"implicit PRM ({loss} on outcome labels)",
                tags={"loss": loss, "kind": "implicit_prm"},
                params={**{k: v for k, v in config.model_dump().items() if k != "reuse"}, "loss": loss, "ref": run_info["ref"],
                        "coef": info["coef"]},  # the β used when config leaves 0 (MLflow keeps a param's first value)
                metrics={"train_seconds": run_info["train_seconds"],
                         **{k: float(info[k]) for k in ("loss_last", "flops", "tokens_trained")}}, curve=losses)
            info["mlflow_model"] = logged.pop("mlflow_model")
            run_info.update(logged)
        (tmp / "implicit.json").write_text(json.dumps({**info, "losses": losses}, indent=2))
        update_run_info(tmp, run_info)
    return {**info, **run_info}


@dg.asset(
    partitions_def=implicit_losses,
    backfill_policy=implicit_loss_backfill,
    deps=[dg.AssetDep(a, partition_mapping=ALL_SHARDS) for a in ("rollouts", "problem_pool")] + ["policy_model"],
    code_version=CODE_VERSION,
    group_name="prm",
    kinds={"pytorch", "transformers", "mlflow"},
    description="Implicit PRM per loss: θ from the policy, π_ref = the same checkpoint frozen, ρ = β·log π_θ/π_ref "
                "trained on outcome labels; step rewards r_k = Q_k − Q_{k−1} from its partial sums.",
)
def implicit_prm(context: dg.AssetExecutionContext, config: ImplicitPrmConfig, storage: StorageResource,
                 domain: DomainResource, tracking: TrackingResource) -> dg.MaterializeResult:
    from prm_core.lineage.storage import md5_dir, md5_file

    keys = all_shards(context)
    inputs = {"rollouts": [md5_file(p) for p in storage.shard_tables("rollouts", keys)], "policy": md5_dir(storage.model("policy"))}
    per_loss, sweep = {}, {}
    for loss in context.partition_keys:
        out = implicit_dir(storage, loss)
        fingerprint = {"code": CODE_VERSION, "loss": loss, "inputs": inputs,
                       "config": config.model_dump(exclude={"reuse"})}
        if config.reuse and is_current(out / "model.safetensors", fingerprint):
            context.log.info(f"implicit PRM {loss} unchanged: reusing {out}")
            per_loss[loss] = {"reused": True, **implicit_info(out)}  # with the cost it had when trained
            continue
        info = train_one(storage, domain.get(), config, loss, config.responses_per_problem, out, keys, tracking, context.run_id)
        if info is None:
            context.log.warning(f"implicit PRM {loss}: no training data (no question with both outcomes): not trained")
            per_loss[loss] = {"trained": False, "reason": "no training data", "train_seconds": 0.0}
            continue
        mark_current(out / "model.safetensors", fingerprint)
        per_loss[loss] = {"reused": False, **info}
    if "ce" in context.partition_keys:  # the responses-per-question sweep (no registered model: a measurement)
        for m in config.ce_sweep:
            out = implicit_dir(storage, f"ce_m{m}")
            fingerprint = {"code": CODE_VERSION, "loss": "ce", "m": m, "inputs": inputs, "config": config.model_dump(exclude={"reuse"})}
            if config.reuse and is_current(out / "model.safetensors", fingerprint):
                sweep[m] = {"reused": True, **implicit_info(out)}
            elif (trained := train_one(storage, domain.get(), config, "ce", m, out, keys)) is not None:
                mark_current(out / "model.safetensors", fingerprint)
                sweep[m] = {"reused": False, **trained}
    update_summary(storage.base_dir, {f"implicit.{loss}.precision": info["precision"] for loss, info in per_loss.items()
                                      if "precision" in info})
    for loss, info in per_loss.items():
        swept = sweep if loss == "ce" else {}
        models = {loss: info, **{f"ce_m{m}": v for m, v in swept.items()}}
        rows = pl.from_dicts([{"model": k, **{c: v.get(c) for c in ("reused", "responses", "pairs", "steps", "tokens_trained",
                                                                     "loss_first", "loss_last", "train_seconds", "flops")}}
                              for k, v in models.items()], infer_schema_length=None)
        record_partition(context, storage, loss, None, [implicit_dir(storage, k) for k in models],
                         sum(v.get("train_seconds") or 0.0 for v in models.values()),  # kept models: as recorded
                         path=dg.MetadataValue.path(str(implicit_dir(storage, loss))),
                         per_model=dg.MetadataValue.json(json.loads(json.dumps(models, default=str))), training=table(rows),
                         **{k: info[k] for k in ("reused", "loss_last") if k in info})
    return dg.MaterializeResult()
