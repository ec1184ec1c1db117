"""The implicit PRM's four outcome losses, each on the sequence log-ratio ρ (algorithms.md §4.2).

    ρ(y) = β · [log π_θ(y|x) − log π_ref(y|x)]       (sums over response tokens; `implicit.log_ratio`)

* CE:  BCE(σ(ρ(y)), l), l ∈ {0, 1} the outcome label                       (ce_trainer.py)
* DPO: −log σ(ρ(y_w) − ρ(y_l)) over (correct, incorrect) pairs of one question (DPOLoss)
* KTO: desirable 1 − σ(ρ(y) − z), undesirable 1 − σ(z − ρ(y)), z = β·KL the detached mismatched-pair
       baseline, clamped at 0                                               (OpenRLHF KTOLoss, w_d = w_u = 1)
* NCA: −log σ(ρ_w) − ½·log σ(−ρ_w) − ½·log σ(−ρ_l)                          (TRL `nca_pair`)

Torch only, imported by each loss: the loss names are read where torch is not (the asset's config, at every
code location load). Every loss is a batch mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LOSSES = ("ce", "dpo", "kto", "nca")
PAIRED = ("dpo", "nca")  # trained on (correct, incorrect) pairs; the others on single labelled responses


def ce_loss(rho: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE(σ(ρ), l): the ORM's probability of a correct outcome is σ(ρ)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(rho, labels.float())


def dpo_loss(rho_chosen: torch.Tensor, rho_rejected: torch.Tensor) -> torch.Tensor:
    """−log σ(ρ_w − ρ_l)."""
    import torch.nn.functional as F

    return -F.logsigmoid(rho_chosen - rho_rejected).mean()


def kto_loss(rho: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """1 − σ(ρ − z) for desirable responses, 1 − σ(z − ρ) for undesirable ones; z = max(β·KL, 0), detached."""
    import torch

    z = kl.detach().clamp(min=0)
    return torch.where(desirable.bool(), 1 - torch.sigmoid(rho - z), 1 - torch.sigmoid(z - rho)).mean()


def nca_loss(rho_chosen: torch.Tensor, rho_rejected: torch.Tensor) -> torch.Tensor:
    """−log σ(ρ_w) − ½·log σ(−ρ_w) − ½·log σ(−ρ_l)."""
    import torch.nn.functional as F

    return (-F.logsigmoid(rho_chosen) - 0.5 * F.logsigmoid(-rho_chosen) - 0.5 * F.logsigmoid(-rho_rejected)).mean()
