"""Partitions: problem-pool shards are dynamic, so a growing pool only computes its new shards."""

import dagster as dg

shards = dg.DynamicPartitionsDefinition(name="shards")

# one run processes a whole range of shards, so the generation engine starts once per run
shard_backfill = dg.BackfillPolicy.single_run()
