"""`benchmark_sets`: held-out PRM benchmarks from fresh problems — a ProcessBench-style set and best-of-N candidates."""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.common.metadata import (
    compute_or_reuse,
    computed_seconds,
    cost,
    files_written,
    fingerprint_path,
    preview,
    table,
)
from assets.common.resources import DomainResource, GeneratorResource, StorageResource

CODE_VERSION = "1"


class BenchmarkSetsConfig(dg.Config):
    processbench_per_class: int = Field(default=300, description="erroneous and all-correct responses each (half dev, half test)")
    bon_problems: int = Field(default=500, description="held-out problems for best-of-N (≥ 500: see the issue)")
    bon_n: int = 8
    seed: int = 0
    reuse: bool = True


@dg.asset(
    deps=["policy_model"],
    code_version=CODE_VERSION,
    group_name="evaluation",
    kinds={"polars", "parquet"},
    check_specs=[dg.AssetCheckSpec("processbench_balanced", asset="benchmark_sets",
                                   description="as many erroneous as all-correct responses, as asked (warns when the policy is too weak or too strong)")],
    description="Fresh problems only: ProcessBench-style dev/test with exact first errors (balanced), and N policy samples per problem for best-of-N.",
)
def benchmark_sets(context: dg.AssetExecutionContext, config: BenchmarkSetsConfig, storage: StorageResource,
                   domain: DomainResource, generator: GeneratorResource) -> dg.MaterializeResult:
    from prm_core.domains import has_exact_labeller
    from prm_core.evaluation.benchmark_sets import bon_candidates, processbench_set
    from prm_core.lineage.storage import md5_dir

    dom = domain.get()
    if not has_exact_labeller(dom):
        raise ValueError(f"domain {dom.name!r} cannot make fresh problems with exact labels; the real ProcessBench is scored by `benchmark_scores`")
    policy = storage.model("policy")
    base = {"code_version": CODE_VERSION, "policy_md5": md5_dir(policy), "domain": domain.fingerprint(), "seed": config.seed}
    pb, pb_reused = compute_or_reuse(
        storage.table("benchmark_sets", "processbench"), {**base, "per_class": config.processbench_per_class},
        config.reuse, lambda: processbench_set(dom, generator.get(policy), config.processbench_per_class, seed=config.seed))
    bon, bon_reused = compute_or_reuse(
        storage.table("benchmark_sets", "bon"), {**base, "problems": config.bon_problems, "n": config.bon_n},
        config.reuse, lambda: bon_candidates(dom, generator.get(policy), config.bon_problems, config.bon_n, seed=config.seed))
    # kept tables: the cost they had when generated (their tokens are in the table, their seconds in run_info.json)
    seconds = [computed_seconds(storage.table("benchmark_sets", n)) for n in ("processbench", "bon")]
    per_problem = bon.group_by("problem_id").agg(pl.col("correct").mean(), pl.col("greedy_correct").first())
    n_err, n_cor = int((pb["label"] >= 0).sum()), int((pb["label"] == -1).sum())
    balanced = n_err == n_cor == config.processbench_per_class
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="processbench_balanced", passed=balanced, severity=dg.AssetCheckSeverity.WARN,
        metadata={"erroneous": n_err, "all_correct": n_cor, "asked": config.processbench_per_class})], metadata={
        "processbench_counts": table(pb.group_by("split").agg(
            erroneous=(pl.col("label") >= 0).sum(), all_correct=(pl.col("label") == -1).sum()).sort("split")),
        "processbench_preview": preview(pb.select("split", "label", "steps")),
        "bon_problems": bon["problem_id"].n_unique(),
        "bon_pass_at_1": float(bon["correct"].mean()),
        "bon_greedy": float(per_problem["greedy_correct"].mean()),
        "reused": pb_reused and bon_reused,
        **cost(None if None in seconds else sum(seconds), generated_tokens=int(bon["num_tokens"].sum()), rollouts=bon.height),
        **files_written(storage, [storage.table("benchmark_sets", n) for n in ("processbench", "bon")]),
    })


@dg.asset_check(asset=benchmark_sets, blocking=True,
                description="ProcessBench set as built: one class full, none over, labels in range, each class half dev (blocks downstream)")
def processbench_sound(storage: StorageResource) -> dg.AssetCheckResult:
    """Unlike `processbench_balanced` (a warning: a weak policy leaves the all-correct class short), a broken table."""
    import json

    from prm_core.evaluation.benchmark_sets import processbench_violations
    from prm_core.lineage.storage import read_parquet

    path = storage.table("benchmark_sets", "processbench")
    asked = json.loads(fingerprint_path(path).read_text())["per_class"]  # what the table was built from
    problems = processbench_violations(read_parquet(path), asked)
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"asked_per_class": asked, "problems": dg.MetadataValue.json(problems)})
