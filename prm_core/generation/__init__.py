"""Generation: the sampling interface, the vLLM and transformers engines, the policy (training), rollouts and
the tokenizer — everything that turns problems into sampled, graded responses.
May import: domains, runtime, lineage."""
