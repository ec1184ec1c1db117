"""New problem files become new shards (dynamic partitions), and only those are processed: by a sensor (every
minute) or a schedule (cron), both off by default. Either requests one run of `default_pipeline` over the range of
the new shards, so the engine starts once and old shards are neither recomputed nor re-materialized. When that run
succeeds, `refresh_prm_stage` chains the rest of the refresh: the implicit stage, then the PRM stage (corpora, PRMs,
benchmarks, summary), over every loss and label set, on the grown data."""


import os

import dagster as dg

from assets.common.partitions import shards
from orchestration.jobs import default_pipeline, implicit_pipeline, label_set_keys, prm_pipeline
from orchestration.launch import RANGE_END, RANGE_START

CRON_ENV, DEFAULT_CRON = "PRM_REGENERATE_CRON", "0 3 * * *"  # the schedule's cron (daily at 03:00 by default)
NEW_SHARDS_TAG = "prm/new_shards"  # on every run of a refresh: the shards it was started for


def new_shards(instance) -> tuple[str, list[str]] | dg.SkipReason:
    """The problem folder and the stems of its files that are not shards yet, or why there is nothing to do."""
    from prm_core.domains.problems import ProblemFileError
    from prm_core.domains.source_folder import problem_files

    folder = os.environ.get("PRM_PROBLEMS_DIR")
    if not folder or not os.path.isdir(folder):
        return dg.SkipReason("set PRM_PROBLEMS_DIR to a folder of JSONL/JSON/Parquet problem files")
    try:
        stems = list(problem_files(folder))
    except ProblemFileError as e:  # e.g. two files with one stem: both named
        return dg.SkipReason(str(e))
    known = set(instance.get_dynamic_partitions(shards.name))
    new = [s for s in stems if s not in known]
    return (folder, new) if new else dg.SkipReason("no new problem files")


def new_shards_request(instance, run_key: str) -> dg.SensorResult | dg.SkipReason:
    """Add the new shards and request one run over their range (they are added last, so the range is exactly them)."""
    found = new_shards(instance)
    if isinstance(found, dg.SkipReason):
        return found
    folder, new = found
    request = dg.RunRequest(run_key=f"{run_key}:{new[0]}..{new[-1]}",
                            run_config={"ops": {"problem_pool": {"config": {"source": folder}}}},
                            tags={RANGE_START: new[0], RANGE_END: new[-1], NEW_SHARDS_TAG: ",".join(new)[:1000]})
    return dg.SensorResult(run_requests=[request], dynamic_partitions_requests=[shards.build_add_request(new)])


@dg.sensor(job=default_pipeline, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Adds a shard for every new file in $PRM_PROBLEMS_DIR and runs the pipeline on the new shards.")
def new_problem_files(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    return new_shards_request(context.instance, "new_problem_files")


@dg.schedule(job=default_pipeline, cron_schedule=os.environ.get(CRON_ENV, DEFAULT_CRON),
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Scheduled regeneration: the shards of files new in $PRM_PROBLEMS_DIR since the last run "
                         f"(cron ${CRON_ENV}, default '{DEFAULT_CRON}').")
def regenerate_new_shards(context: dg.ScheduleEvaluationContext):
    result = new_shards_request(context.instance, f"regenerate@{context.scheduled_execution_time:%Y-%m-%dT%H:%M}")
    if isinstance(result, dg.SkipReason):
        return result
    for add in result.dynamic_partitions_requests:  # a schedule returns run requests only: add the shards first
        context.instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    return result.run_requests


def next_stage_request(run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    """The refresh's next run after `run` succeeded: new shards → implicit stage (every loss) → PRM stage (every label
    set), each one run over its whole range, as `prm run` chains them; reruns of a key are skipped by Dagster."""
    from assets.common.partitions import implicit_losses

    if NEW_SHARDS_TAG not in run.tags:
        return dg.SkipReason(f"run {run.run_id} was not started for new shards")
    after = {default_pipeline.name: (implicit_pipeline.name, implicit_losses.get_partition_keys()),
             implicit_pipeline.name: (prm_pipeline.name, label_set_keys(os.environ.get("PRM_DOMAIN", "arith") == "arith"))}
    if run.job_name not in after:
        return dg.SkipReason(f"{run.job_name} ends the refresh")
    job, keys = after[run.job_name]
    return dg.RunRequest(run_key=f"{run.run_id}:{job}", job_name=job,
                         tags={RANGE_START: keys[0], RANGE_END: keys[-1], NEW_SHARDS_TAG: run.tags[NEW_SHARDS_TAG]})


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[default_pipeline, implicit_pipeline],
                      request_jobs=[implicit_pipeline, prm_pipeline], default_status=dg.DefaultSensorStatus.STOPPED,
                      description="After a run over new shards: the implicit stage, then the PRM stage, on the grown data "
                                  "(retrains the PRMs and rescores the benchmarks; old shards are not touched).")
def refresh_prm_stage(context: dg.RunStatusSensorContext):
    return next_stage_request(context.dagster_run)
