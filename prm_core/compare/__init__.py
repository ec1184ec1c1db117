"""Compare, the top layer: the compute-matched comparison of every labelling method — what a FLOP budget buys each
method (frontier), each point trained and scored (points), told apart by paired standard errors.
May import: active, evaluation, prm, labels, generation, domains, runtime, lineage."""
