"""ActPRM's ensemble-head PRM (algorithms.md §3.1-3.2): E MLP heads on one frozen backbone's step inputs.

Each head is H → 128 → 128 → 1 with ReLU, batched over heads with einsum; here a head reads the step's hidden
state at its separator *and* the backbone's four LM features (`modeling_prm.FEATURES`), the PRM backbone's own
verifier signal, so its input is H + 4. Per step t and head e the probability is p_{e,t} = σ(z_{e,t}); the score
is the mean over heads. Training (paper Eq. 4, code form):

    L = mean_{(e, b, t) ∈ mask} BCE(z_{e,b,t}, y_{b,t}) + λ · mean_φ (φ − φ_init)²

with a per-(head, sample) Bernoulli(p) data mask (bootstrap across heads) and the regulariser a mean over every
head parameter (not a per-head norm). φ_init is a persistent buffer, so a save/load round trip keeps both the
heads and their anchor exactly (the reference code re-initialises its anchor on load: a pitfall, §3.7).
Init: N(0, (1/(2√fan_in))²), untruncated, as the reference code really does; bias 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

try:
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4
    from transformers import PretrainedConfig as PreTrainedConfig


class EnsembleConfig(PreTrainedConfig):
    model_type = "prm_ensemble_heads"

    def __init__(self, input_size: int = 132, num_heads: int = 8, hidden: int = 128, **kwargs):
        self.input_size, self.num_heads, self.hidden = input_size, num_heads, hidden
        super().__init__(**kwargs)


class EnsembleHeads(PreTrainedModel):
    """E MLP heads; `forward(x [N, D])` gives logits [E, N]."""

    config_class = EnsembleConfig

    def __init__(self, config: EnsembleConfig):
        super().__init__(config)
        e, sizes = config.num_heads, (config.input_size, config.hidden, config.hidden, 1)
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(e, a, b)) for a, b in zip(sizes, sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(e, 1, b)) for b in sizes[1:])
        for w in self.weights:
            nn.init.normal_(w, std=1 / (2 * math.sqrt(w.shape[1])))
        self.register_buffer("anchor", self.flat().detach().clone(), persistent=True)  # φ_init
        # inputs are standardised with the training pool's statistics, saved with the heads
        self.register_buffer("input_mean", torch.zeros(config.input_size), persistent=True)
        self.register_buffer("input_std", torch.ones(config.input_size), persistent=True)
        self.post_init()

    def set_input_stats(self, inputs: list[torch.Tensor]) -> None:
        """Standardise every input column with the mean and std of `inputs` (the pool's step inputs)."""
        stacked = torch.cat(inputs).float()
        self.input_mean.copy_(stacked.mean(0))
        self.input_std.copy_(stacked.std(0) + 1e-6)

    def _init_weights(self, module):  # the heads initialise themselves above; nothing to redo on load
        pass

    def flat(self) -> torch.Tensor:
        return torch.cat([p.reshape(-1) for p in [*self.weights, *self.biases]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.input_mean) / self.input_std
        h = x.unsqueeze(0).expand(self.config.num_heads, *x.shape)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.einsum("end,edk->enk", h, w) + b
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h[..., 0]

    def regulariser(self) -> torch.Tensor:
        return ((self.flat() - self.anchor) ** 2).mean()  # mean over parameters (the code's scale for λ)


@dataclass(frozen=True)
class EnsembleTrainConfig:
    lr: float = 1e-3
    reg_lambda: float = 0.5  # the reference script's λ for E > 1
    learning_probability: float = 1.0  # Bernoulli(p) per (head, sample)
    seed: int = 0


def ensemble_loss(heads: EnsembleHeads, x: torch.Tensor, y: torch.Tensor, sample: torch.Tensor,
                  cfg: EnsembleTrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """BCE over every (head, step) whose sample the head's Bernoulli mask keeps, plus λ·regulariser.

    x [N, D] step inputs, y [N] hard labels, sample [N] the index of each step's trajectory in the batch."""
    logits = heads(x)  # [E, N]
    n_samples = int(sample.max()) + 1 if len(sample) else 0
    keep = torch.bernoulli(torch.full((heads.config.num_heads, n_samples), cfg.learning_probability),
                           generator=generator).bool()
    mask = keep[:, sample] if n_samples else torch.zeros_like(logits, dtype=torch.bool)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, y.float().expand_as(logits), reduction="none")
    data = bce[mask].mean() if mask.any() else logits.sum() * 0.0  # an empty mask: zero, graph attached, no NaN
    return data + cfg.reg_lambda * heads.regulariser()


def probabilities(heads: EnsembleHeads, x: torch.Tensor) -> torch.Tensor:
    """p_{e,n} = σ(z_{e,n}), [E, N], without grad."""
    with torch.no_grad():
        return torch.sigmoid(heads(x))


def probabilities_each(heads: EnsembleHeads, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """`probabilities` of several trajectories' steps ([E, n_i] each) from one forward over all of them."""
    if not xs:
        return []
    return list(probabilities(heads, torch.cat(xs)).split([len(x) for x in xs], dim=1))


def step_scores(heads: EnsembleHeads, inputs: list[torch.Tensor]) -> list[list[float]]:
    """The ensemble PRM's step scores: the mean over heads of σ(z) at each step of each trajectory."""
    return [p.mean(0).tolist() for p in probabilities_each(heads, inputs)]
