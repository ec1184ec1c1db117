"""The README card of an exported PRM: how to load it, what it was trained on, how it scored."""

from __future__ import annotations

PRM_CARD = """---
library_name: transformers
pipeline_tag: token-classification
tags: [process-reward-model, prm-foundry]
---
# {name}

A process reward model (PRM) from PRM Foundry, trained on **{label_set}** step labels.

## Use

```python
from transformers import AutoModelForTokenClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(path{remote})
prm = AutoModelForTokenClassification.from_pretrained(path{remote})  # num_labels=1
# ids = tok(prompt).input_ids; for each step: ids += tok(step, add_special_tokens=False).input_ids + [sep_id]
# sep_id = tok({separator!r}, add_special_tokens=False).input_ids[-1]; score = sigmoid(logits[0, sep positions, 0])
```

Steps are tokenised one by one with the separator id appended, exactly as in training. {head_note}

## Data and labels

- label set: `{label_set}` ({label_note})
- training sequences: {sequences} ({hard_negatives} hard negatives: a trusted step with its result changed)
- labelled steps: {steps_labelled}
- backbone: the policy pre-trained further on reference solutions (`prm_backbone`)
- training: {train}

## Metrics (this run's held-out benchmarks)

| metric | value |
|---|---|
{metrics}
"""

LABEL_NOTES = {
    "vanilla": "Math-Shepherd Monte Carlo: c_t, the share of K rollouts from each step that reach the right answer",
    "scan": "SCAN: confident questions only, min(c_t/SC, 1) on the d steps before the detected error, 0 at it, balanced 1:1",
    "oracle": "exact step labels from the arith checker on the same responses as vanilla (the ceiling)",
}


def prm_card(label_set: str, training: dict, metrics: dict, separator: str, name: str) -> str:
    """The README of an exported PRM: how to load it, what it was trained on, how it scored."""
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    # reproducible facts only: timings and MLflow run ids/versions are in the model's run_info.json
    train = {k: training[k] for k in ("loss_last", "feature_weights", "mlflow_model") if k in training}
    features = training.get("features", True)
    remote = ", trust_remote_code=True" if features else ""
    head_note = ("The step logit is a linear head on the separator's hidden state plus learned weights on the model's "
                 "own token log-probabilities over the step (`modeling_prm.py`, shipped here; hence "
                 "`trust_remote_code=True`)." if features else
                 "The model is the stock token classifier of its architecture: a linear head on the separator's "
                 "hidden state; it loads without remote code.")
    return PRM_CARD.format(remote=remote, head_note=head_note, name=name, label_set=label_set,
                           label_note=LABEL_NOTES.get(label_set, "user labels"),
                           sequences=training.get("sequences"), hard_negatives=training.get("hard_negatives"),
                           steps_labelled=training.get("steps_labelled"), train=train, separator=separator, metrics=rows)


IMPLICIT_CARD = """---
library_name: transformers
pipeline_tag: text-generation
tags: [process-reward-model, implicit-prm, prm-foundry]
---
# prm-foundry-implicit-{loss}

An implicit PRM from PRM Foundry: a causal LM θ trained with the **{loss}** loss on outcome labels only
(β = {beta}), against the frozen reference π_ref = the checkpoint it started from (the pipeline's policy, md5
`{ref_md5}`; its path on the machine that trained it is in `run_info.json`).
No step labels and no MC rollouts were used.

## Use: step rewards from two causal LMs

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(path)
theta = AutoModelForCausalLM.from_pretrained(path)
ref = AutoModelForCausalLM.from_pretrained(REFERENCE)  # the exact reference checkpoint above
# ids = tok(prompt).input_ids; for each step: ids += tok(step, add_special_tokens=False).input_ids + [sep_id]
# sep_id = tok({separator!r}, add_special_tokens=False).input_ids[-1]
# δ_i = log θ(y_i | y_<i) − log ref(y_i | y_<i) over response tokens (after the prompt)
# Q_k = coef · Σ δ_i up to step k's separator;  r_k = Q_k − Q_(k−1);  coef = {coef}
```

Best-of-N: the response score is min_k r_k (the paper's default; min_k Q_k, and both without the reference, are
reported too). ProcessBench-style: the first step with σ(Q_k) < τ, τ chosen on a dev split.

## Data

- responses: {responses} ({per_problem} per question), outcome labels from the domain's answer checker
- {pairs_note}
- optimizer steps: {steps}; trained tokens: {tokens_trained}
- cost: {flops:.3g} FLOPs (data {data_flops:.3g} + training {train_flops:.3g})
"""


def implicit_card(**fields) -> str:
    return IMPLICIT_CARD.format(**fields)
