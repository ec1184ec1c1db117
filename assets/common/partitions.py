"""Partitions: problem-pool shards are dynamic, so a growing pool only computes its new shards."""

import dagster as dg

shards = dg.DynamicPartitionsDefinition(name="shards")


def all_shards(context) -> list[str]:
    """The instance's shard keys: what readers of every shard read (`StorageResource.shard_tables`), never a glob."""
    return context.instance.get_dynamic_partitions(shards.name)


# one run processes a whole range of shards, so the generation engine starts once per run
shard_backfill = dg.BackfillPolicy.single_run()

# the label sets a PRM is trained on: the two MC methods and the exact-label ceiling
label_sets = dg.StaticPartitionsDefinition(["vanilla", "scan", "oracle"])
label_set_backfill = dg.BackfillPolicy.single_run()

# the implicit PRM's outcome losses (algorithms.md §4.2): one model each
implicit_losses = dg.StaticPartitionsDefinition(["ce", "dpo", "kto", "nca"])
implicit_loss_backfill = dg.BackfillPolicy.single_run()
