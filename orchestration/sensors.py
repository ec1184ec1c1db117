"""Sensors: new problem files become new shards (dynamic partitions) and are processed."""


import os

import dagster as dg

from assets.common.partitions import shards
from orchestration.jobs import default_pipeline


@dg.sensor(job=default_pipeline, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Adds a shard for every new file in $PRM_PROBLEMS_DIR and runs the pipeline on it.")
def new_problem_files(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    from prm_core.domains.problems import ProblemFileError, problem_files

    folder = os.environ.get("PRM_PROBLEMS_DIR")
    if not folder or not os.path.isdir(folder):
        return dg.SkipReason("set PRM_PROBLEMS_DIR to a folder of JSONL/JSON/Parquet problem files")
    try:
        stems = list(problem_files(folder))
    except ProblemFileError as e:  # e.g. two files with one stem: both named
        return dg.SkipReason(str(e))
    known = set(context.instance.get_dynamic_partitions(shards.name))
    new = [s for s in stems if s not in known]
    if not new:
        return dg.SkipReason("no new problem files")
    config = {"ops": {"problem_pool": {"config": {"source": folder}}}}
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key, run_config=config) for key in new],
        dynamic_partitions_requests=[shards.build_add_request(new)],
    )
