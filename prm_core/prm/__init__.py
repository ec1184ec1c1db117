"""PRMs: the shared input encoding, the model class shipped beside the weights, the discriminative PRM (train,
score, load), its backbone, training corpus, hard negatives and model card; room for implicit and ensemble PRMs.
May import: generation, domains, runtime, lineage — never labels or evaluation."""
