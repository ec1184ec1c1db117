"""Labels: exact step truth, self-confidence, Monte Carlo values and first-error search (vanilla, SCAN), soft
and denoised labels, the audit against the truth, and label-set exports in the field's formats.
May import: generation, domains, runtime, lineage — never prm or evaluation."""
