"""Active learning (ActPRM, algorithms.md §3): ensemble uncertainty, selection, judges that label what is selected,
and the pool-based one-pass loop.
May import prm, labels, generation, domains, runtime, lineage (beside evaluation; neither imports the other)."""
