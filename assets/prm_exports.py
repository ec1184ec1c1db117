"""`prm_exports`: each PRM as a directory the Auto classes load, with a model card (data, labels, metrics)."""

import dagster as dg
import polars as pl

from assets.common.metadata import Timer, cost, files_written, table
from assets.common.models import PRM_REGISTERED, prm_dir, training_info
from assets.common.partitions import label_sets
from assets.common.resources import StorageResource

CARD_METRICS = ("f1", "f1_tau05", "tau", "acc_err", "acc_cor", "prm_min", "prm_min_stderr", "prm_min_vote", "majority",
                "pass_at_n", "pair_order", "real_avg_f1")


@dg.asset(
    deps=[dg.AssetDep("prm_model", partition_mapping=dg.AllPartitionMapping()), "benchmark_scores"],
    code_version="1",
    group_name="prm",
    kinds={"transformers"},
    description="data/prm_exports/<label set>/: safetensors + tokenizer + modeling code + README card.",
)
def prm_exports(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    from prm_core.lineage.storage import atomic_dir, copy_files, read_parquet
    from prm_core.prm.card import prm_card

    scores = {r["prm"]: r for r in read_parquet(storage.root / "reports" / "benchmark_scores.parquet").iter_rows(named=True)}
    written = []
    with Timer() as t:
        for label_set in label_sets.get_partition_keys():
            src = prm_dir(storage, label_set)
            if not (src / "model.safetensors").exists():
                continue
            training = training_info(src)
            metrics = {k: scores.get(label_set, {}).get(k) for k in CARD_METRICS if scores.get(label_set, {}).get(k) is not None}
            out = storage.root / "prm_exports" / label_set
            with atomic_dir(out) as tmp:
                copy_files(src, tmp, keep=lambda name: not name.endswith(".fingerprint.json"))
                (tmp / "README.md").write_text(prm_card(label_set, training, metrics, "\n", PRM_REGISTERED.format(label_set=label_set)))
            written.append({"label_set": label_set, "path": str(out), "files": len(list(out.iterdir()))})
    return dg.MaterializeResult(metadata={"exports": table(pl.DataFrame(written)), **cost(t.seconds),
                                          **files_written(storage, [w["path"] for w in written])})
