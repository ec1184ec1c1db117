"""Partitions: problem-pool shards are dynamic, so a growing pool only computes its new shards."""

import dagster as dg

shards = dg.DynamicPartitionsDefinition(name="shards")

# one run processes a whole range of shards, so the generation engine starts once per run
shard_backfill = dg.BackfillPolicy.single_run()

# the label sets a PRM is trained on: the two MC methods and the exact-label ceiling
label_sets = dg.StaticPartitionsDefinition(["vanilla", "scan", "oracle"])
label_set_backfill = dg.BackfillPolicy.single_run()
