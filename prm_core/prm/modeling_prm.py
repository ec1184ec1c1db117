"""The PRM with LM features: any causal LM plus a step head that also reads the LM's own result log-probs.

testbed-probe.md §5/§9: a head on hidden states alone learns step position and difficulty, not whether
`5 + 24 = 39` is right — within one forward pass no later position can see what the top layer predicted for
an earlier token. The LM head already holds that check. So the step logit at each separator is

    logit_t = b + Σ_k α_k · f_k(step)  [+ w·h_t with `hidden_term`]

with four features f: two statistics, each over the step's *result span* (the tokens after its last marker
such as `=`, or the whole step without one) and over the *whole step* (operands copied wrong show up there);
never the separator, which the LM does not predict after a final answer line:

    min_logprob = min_i log π(x_i | x_<i)                      (the probe's training-free verifier)
    min_margin  = min_i [log π(x_i | x_<i) − max_v log π(v | x_<i)]   (0 iff every token is the LM's argmax)

The hidden-state term w·h_t is off by default: trained on a label set it learns that set's problem-difficulty
prior (SCAN keeps only the questions the policy is confident on), which does not transfer: on the testbed it cost
the MC label sets' PRMs up to 0.2 F1 and the exact labels' PRM nothing (docs/prms.md).

π is the wrapped causal LM (`AutoModelForCausalLM`: Llama, Qwen2/3, Mistral, Gemma, …), initialised from the
policy or a backbone. A PRM without these features is the stock `<Arch>ForTokenClassification` (discriminative.py).
This file imports only torch and transformers: `save_pretrained` copies it next to the weights, so
`AutoModelForTokenClassification.from_pretrained(dir, trust_remote_code=True)` loads an export without this package.
"""

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

try:
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4
    from transformers import PretrainedConfig as PreTrainedConfig

FEATURES = ("result_min_logprob", "result_min_margin", "step_min_logprob", "step_min_margin")
LOGPROB_FLOOR = -20.0  # keeps one impossible token from dominating the logit


class StepVerifierConfig(PreTrainedConfig):
    model_type = "prm_step_verifier"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(self, backbone_config=None, separator_id=None, marker_ids=(), hidden_term=True, **kwargs):
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        self.backbone_config = backbone_config
        self.separator_id = separator_id
        self.marker_ids = list(marker_ids)
        self.hidden_term = hidden_term  # True for exports made before the term became optional
        kwargs.setdefault("num_labels", 1)
        if backbone_config is not None:
            kwargs.setdefault("tie_word_embeddings", getattr(backbone_config, "tie_word_embeddings", False))
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size

    def to_dict(self) -> dict:
        out = super().to_dict()
        if isinstance(out.get("backbone_config"), dict):  # where the backbone was loaded from is no part of the model
            out["backbone_config"].pop("_name_or_path", None)
        return out


class StepVerifierForTokenClassification(PreTrainedModel):
    config_class = StepVerifierConfig
    base_model_prefix = "lm"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config, lm=None):
        super().__init__(config)
        self.num_labels = config.num_labels
        # a loaded LM keeps its weights: `post_init` only initialises modules not yet initialised (the head)
        self.lm = lm if lm is not None else AutoModelForCausalLM.from_config(config.backbone_config)
        self.dropout = nn.Dropout(0.1)
        self.score = nn.Linear(config.backbone_config.hidden_size, config.num_labels)
        self.feature_score = nn.Linear(len(FEATURES), config.num_labels, bias=False)
        self.post_init()

    def _init_weights(self, module):
        if module is self.score:
            if self.config.hidden_term:
                nn.init.normal_(module.weight, std=getattr(self.config.backbone_config, "initializer_range", 0.02))
            else:
                nn.init.zeros_(module.weight)  # unused: the logit reads the features and the bias only
            nn.init.zeros_(module.bias)
        elif module is self.feature_score:
            nn.init.constant_(module.weight, 1.0 / len(FEATURES))

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def head_inputs(self, input_ids, attention_mask=None):
        """(hidden states, result-span features), each [batch, seq, ·]: everything the head reads."""
        hidden = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logp = self.lm.get_output_embeddings()(hidden.float()).float().log_softmax(-1)[:, :-1]
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
        feature_logit = self.feature_score(feats.float())
        if not self.config.hidden_term:
            return feature_logit + self.score.bias  # b + Σ α_k f_k
        return self.score(self.dropout(hidden.float())) + feature_logit

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        logits = self.head(*self.head_inputs(input_ids, attention_mask))
        loss = None
        if labels is not None:  # soft targets in [0, 1]; NaN where no step ends
            keep = ~torch.isnan(labels)
            loss = nn.functional.binary_cross_entropy_with_logits(logits[..., 0][keep], labels[keep].float())
        return TokenClassifierOutput(loss=loss, logits=logits)


def segment_cummin(values, segment):
    """Running min of `values` [batch, seq, k] within runs of equal `segment` ids [batch, seq].

    Hillis-Steele doubling: after round j each position holds the min over the last 2^j positions of its run,
    so log2(seq) vectorised rounds replace a Python loop over positions (exact: only `min` is applied).
    """
    out, seq, k = values, values.shape[1], 1
    while k < seq:
        same = torch.zeros_like(segment, dtype=torch.bool)
        same[:, k:] = segment[:, k:] == segment[:, :-k]
        shifted = torch.cat([out[:, :k], out[:, :-k]], 1)
        out = torch.where(same[..., None], torch.minimum(out, shifted), out)
        k *= 2
    return out


def span_minima(input_ids, token_lp, margin, separator_id, marker_ids):
    """Per position, the running min of (log-prob, margin) over the current step's result span ([batch, seq, 2]).

    A step ends at a separator token (whose own value is not scored); its result span starts after its last
    marker token (or at the step's start when it has none) and ends before that separator. Minima start at 0.
    """
    markers = torch.tensor(sorted(marker_ids), dtype=input_ids.dtype, device=input_ids.device)
    is_marker = torch.isin(input_ids, markers) if len(markers) else torch.zeros_like(input_ids, dtype=torch.bool)
    is_sep = input_ids == separator_id
    vals = torch.stack([token_lp, margin], -1).clamp(max=0.0)
    vals = torch.where(is_sep[..., None], torch.zeros_like(vals), vals)
    step = torch.cumsum(is_sep.long(), 1) - is_sep.long()  # a step runs up to and including its separator
    after_sep = torch.zeros_like(is_sep)
    after_sep[:, 1:] = is_sep[:, :-1]
    span = torch.cumsum((is_marker | after_sep).long(), 1)  # a span restarts at each marker (valued 0)
    step_min = segment_cummin(vals, step)
    span_min = segment_cummin(torch.where(is_marker[..., None], torch.zeros_like(vals), vals), span)
    seen_marker = segment_cummin(-is_marker.float()[..., None], step)[..., 0] < 0
    return torch.where(seen_marker[..., None], span_min, step_min)
