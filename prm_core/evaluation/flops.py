"""What a PRM costs in FLOPs, comparably across methods (algorithms.md §4.3 item 4, the implicit PRM paper's axis).

    data      = generated tokens × 2·P_generator          (responses, plus MC rollouts for MC labels)
    training  = trained tokens × 6·P + forward-only tokens × 2·P   (reference log-probs, frozen-backbone features)

Token counts are whole sequences (prompt included) for training and forwards, generated tokens for data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlopCost:
    data: float
    training: float

    @property
    def total(self) -> float:
        return self.data + self.training


def generation_flops(tokens: int, params: int) -> float:
    return 2.0 * params * tokens  # one forward per generated token


def training_flops(tokens: int, params: int) -> float:
    return 6.0 * params * tokens  # forward + backward


def forward_flops(tokens: int, params: int) -> float:
    return 2.0 * params * tokens


def implicit_cost(response_tokens: int, tokens_trained: int, tokens_ref: int, params: int) -> FlopCost:
    """Implicit PRM: its responses' generation; training θ; reference forwards (θ and ref share the size P)."""
    return FlopCost(generation_flops(response_tokens, params),
                    training_flops(tokens_trained, params) + forward_flops(tokens_ref, params))


def mc_prm_cost(response_tokens: int, rollout_tokens: int, policy_params: int, backbone_tokens: int,
                feature_tokens: int, backbone_params: int) -> FlopCost:
    """A PRM on MC labels: the responses and the MC rollouts (policy); the backbone's own training and the frozen
    forward that computes the head's features over the corpus."""
    return FlopCost(generation_flops(response_tokens + rollout_tokens, policy_params),
                    training_flops(backbone_tokens, backbone_params) + forward_flops(feature_tokens, backbone_params))


def model_params(path) -> int:
    """Parameters of the causal LM in `path` (a local folder)."""
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())


def flop_summary(rows: list[dict]) -> dict:
    """From benchmark rows (`prm`, `flops`, `f1`, and best-of-N: `prm_min`, or `bon_ref_r` for implicit PRMs):
    cost_flops.<set>, implicit.cost_flops (CE's, the paper's headline; else the first implicit PRM's) and its ratio
    to vanilla's, and F1 / best-of-N per TFLOP of every PRM with a cost."""
    out = {}
    by = {r["prm"]: r for r in rows if r.get("flops")}
    for name, r in by.items():
        key = name.replace("implicit_", "implicit.") if name.startswith("implicit_") else name
        if not name.startswith("implicit_"):
            out[f"cost_flops.{key}"] = r["flops"]
        best = r.get("bon_ref_r") if name.startswith("implicit_") else r.get("prm_min")
        out[f"efficiency.{key}.f1_per_tflop"] = r["f1"] / (r["flops"] / 1e12)
        if best is not None:  # ActPRM's baselines (full data, random) have no best-of-N of their own
            out[f"efficiency.{key}.bon_per_tflop"] = best / (r["flops"] / 1e12)
    main = by.get("implicit_ce") or next((r for n, r in by.items() if n.startswith("implicit_")), None)
    if main is not None:
        out["implicit.cost_flops"] = main["flops"]
        if by.get("vanilla"):
            out["implicit.flops_over_vanilla"] = main["flops"] / by["vanilla"]["flops"]
    return out
