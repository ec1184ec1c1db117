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
