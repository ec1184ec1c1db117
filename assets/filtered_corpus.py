"""`filtered_corpus`: the training table each PRM is actually fed — labels after balancing, plus hard negatives."""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import Timer, read_shards, record_partition, table
from assets.common.partitions import all_shards, label_set_backfill, label_sets
from assets.common.resources import DomainResource, StorageResource
from prm_core.lineage.storage import frame_md5, write_parquet
from prm_core.lineage.summary import update_summary
from prm_core.prm.corpus import CorpusConfig

ALL_SHARDS = dg.AllPartitionMapping()


CORPUS = CorpusConfig()


class FilteredCorpusConfig(dg.Config):
    hard_negatives: int = Field(default=CORPUS.hard_negatives, description="per labelled response: a trusted step with its result changed")
    min_label: float = Field(default=CORPUS.min_label, description="a step is trusted (may become a hard negative) when its label is at least this")
    targets: str = Field(default=CORPUS.targets, description="soft, hard, or auto: hard 1[c_t > 0] for vanilla (Math-Shepherd), soft for SCAN")
    seed: int = CORPUS.seed


@dg.asset(
    partitions_def=label_sets,
    backfill_policy=label_set_backfill,
    deps=[dg.AssetDep(a, partition_mapping=ALL_SHARDS) for a in ("problem_pool", "rollouts", "denoised_labels", "step_truth")],
    code_version="2",
    group_name="prm",
    kinds={"polars", "parquet"},
    check_specs=[dg.AssetCheckSpec("targets_match_steps", asset="filtered_corpus",
                                   description="one target in [0, 1] per step on every row")],
    description="Per label set (vanilla, SCAN, oracle = exact labels of vanilla's responses): the PRM's training rows with provenance.",
)
def filtered_corpus(context: dg.AssetExecutionContext, config: FilteredCorpusConfig, storage: StorageResource,
                    domain: DomainResource) -> dg.MaterializeResult:
    from prm_core.domains.problems import prompts_frame
    from prm_core.labels.denoised_labels import oracle_set
    from prm_core.prm.corpus import build_corpus

    dom = domain.get()
    cfg = CorpusConfig(hard_negatives=config.hard_negatives, min_label=config.min_label, targets=config.targets,
                       seed=config.seed)
    keys = all_shards(context)
    pool = read_shards(storage.shard_tables("problem_pool", keys))
    prompts = dict(prompts_frame(dom, pool).iter_rows())
    labels = read_shards(storage.shard_tables("denoised_labels", keys))
    frames, counts = [], []
    for label_set in context.partition_keys:
        with Timer() as t:
            if label_set == "oracle":
                truth = read_shards(storage.shard_tables("step_truth", keys))
                if truth.is_empty():
                    raise ValueError("the oracle label set needs `step_truth` (exact labels): the arith testbed only")
                chosen = oracle_set(labels, truth, read_shards(storage.shard_tables("rollouts", keys)))
            else:
                chosen = labels.filter(pl.col("method") == label_set)
            if chosen.is_empty():  # e.g. SCAN keeps no question when the policy is never confident
                context.log.warning(f"label set {label_set!r} has no labelled responses: its PRM is not trained")
            corpus, c = build_corpus(chosen, prompts, cfg)
            write_parquet(corpus, storage.table("filtered_corpus", label_set))
        frames.append(corpus)
        counts.append({"label_set": label_set, **c, "mean_target": float(corpus["targets"].explode().mean() or 0.0)})
        record_partition(context, storage, label_set, corpus, [storage.table("filtered_corpus", label_set)], t.seconds,
                         counts=table(pl.DataFrame(counts[-1:])))
    batch = pl.concat(frames)
    update_summary(storage.base_dir, {f"corpus.{c['label_set']}.{k}": c[k] for c in counts
                                      for k in ("labelled", "hard_negatives", "steps")})
    bad = batch.filter((pl.col("steps").list.len() != pl.col("targets").list.len())
                       | (pl.col("targets").list.min() < 0) | (pl.col("targets").list.max() > 1)).height
    return dg.MaterializeResult(
        data_version=dg.DataVersion(frame_md5(batch)),
        check_results=[dg.AssetCheckResult(check_name="targets_match_steps", passed=bad == 0, metadata={"violations": bad})],
    )
