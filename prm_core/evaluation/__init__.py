"""Evaluation: benchmark sets, ProcessBench F1 (official rule), best-of-N, a PRM's benchmark scores, and the
policy's own held-out accuracy.
May import every lower layer: prm, labels, generation, domains, runtime, lineage."""
