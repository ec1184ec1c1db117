"""The PRM architecture: a token-classification head that also reads the backbone LM's own result log-probs.

testbed-probe.md §5/§9: a head on hidden states alone learns step position and difficulty, not whether
`5 + 24 = 39` is right — within one forward pass no later position can see what the top layer predicted for
an earlier token. The LM head already holds that check. So the step logit at each separator is

    logit_t = w·h_t + b + Σ_k α_k · f_k(step)

with four features f: two statistics, each over the step's *result span* (the tokens after its last marker
such as `=`, or the whole step without one) and over the *whole step* (operands copied wrong show up there);
never the separator, which the LM does not predict after a final answer line:

    min_logprob = min_i log π(x_i | x_<i)                      (the probe's training-free verifier)
    min_margin  = min_i [log π(x_i | x_<i) − max_v log π(v | x_<i)]   (0 iff every token is the LM's argmax)

π is this model's own causal-LM head (initialised from the policy). The class is a `transformers` model with
`num_labels=1`; its score is σ(logit). This file imports only torch and transformers: `save_pretrained`
copies it next to the weights, so `AutoModelForTokenClassification.from_pretrained(dir, trust_remote_code=True)`
loads an exported PRM without this package.
"""

import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel, LlamaPreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

FEATURES = ("result_min_logprob", "result_min_margin", "step_min_logprob", "step_min_margin")
LOGPROB_FLOOR = -20.0  # keeps one impossible token from dominating the logit


class StepVerifierConfig(LlamaConfig):
    model_type = "prm_step_verifier"

    def __init__(self, separator_id=None, marker_ids=(), **kwargs):
        kwargs.setdefault("num_labels", 1)
        super().__init__(**kwargs)
        self.separator_id = separator_id
        self.marker_ids = list(marker_ids)


class StepVerifierForTokenClassification(LlamaPreTrainedModel):
    config_class = StepVerifierConfig
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.dropout = nn.Dropout(0.1)
        self.score = nn.Linear(config.hidden_size, config.num_labels)
        self.feature_score = nn.Linear(len(FEATURES), config.num_labels, bias=False)
        self.post_init()

    def head_inputs(self, input_ids, attention_mask=None):
        """(hidden states, result-span features), each [batch, seq, ·]: everything the head reads."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logp = self.lm_head(hidden.float()).float().log_softmax(-1)[:, :-1]
        token_lp = logp.gather(-1, input_ids[:, 1:, None])[..., 0].clamp(min=LOGPROB_FLOOR)
        margin = (token_lp - logp.max(-1).values).clamp(min=LOGPROB_FLOOR)
        zero = token_lp.new_zeros(token_lp.shape[0], 1)  # the first token has no prediction
        token_lp, margin = torch.cat([zero, token_lp], 1), torch.cat([zero, margin], 1)
        sep = self.config.separator_id
        feats = torch.cat([span_minima(input_ids, token_lp, margin, sep, self.config.marker_ids),
                           span_minima(input_ids, token_lp, margin, sep, [])], -1)
        return hidden, feats

    def head(self, hidden, feats):
        """The step logit from what `head_inputs` returns (one function for training and scoring)."""
        return self.score(self.dropout(hidden.float())) + self.feature_score(feats.float())

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        logits = self.head(*self.head_inputs(input_ids, attention_mask))
        loss = None
        if labels is not None:  # soft targets in [0, 1]; NaN where no step ends
            keep = ~torch.isnan(labels)
            loss = nn.functional.binary_cross_entropy_with_logits(logits[..., 0][keep], labels[keep].float())
        return TokenClassifierOutput(loss=loss, logits=logits)


def span_minima(input_ids, token_lp, margin, separator_id, marker_ids):
    """Per position, the running min of each feature over the current step's result span ([batch, seq, 2]).

    A step ends at a separator token; its result span starts after its last marker token (or at the step's
    start when it has none) and ends before that separator.
    """
    batch, seq = input_ids.shape
    markers = torch.tensor(sorted(marker_ids), dtype=input_ids.dtype, device=input_ids.device)
    is_marker = torch.isin(input_ids, markers) if len(markers) else torch.zeros_like(input_ids, dtype=torch.bool)
    is_sep = input_ids == separator_id
    vals = torch.stack([token_lp, margin], -1)
    step_min = vals.new_zeros(batch, 2)  # over the whole step
    span_min = vals.new_zeros(batch, 2)  # since the step's last marker
    seen_marker = torch.zeros(batch, 1, dtype=torch.bool, device=input_ids.device)
    out = []
    for t in range(seq):
        m, s = is_marker[:, t, None], is_sep[:, t, None]
        v = torch.where(s, torch.zeros_like(vals[:, t]), vals[:, t])  # the separator itself is not scored
        step_min = torch.minimum(step_min, v)
        span_min = torch.where(m, torch.zeros_like(span_min), torch.minimum(span_min, v))
        seen_marker = seen_marker | m
        out.append(torch.where(seen_marker, span_min, step_min))
        step_min = torch.where(s, torch.zeros_like(step_min), step_min)
        span_min = torch.where(s, torch.zeros_like(span_min), span_min)
        seen_marker = seen_marker & ~s
    return torch.stack(out, 1)
