"""Each frontier point trained and scored: a method's PRM on the first n problems of the pool (frontier.py), on the
shared ProcessBench-style and best-of-N sets, with the same recipes as the default run.

* MC label sets and the oracle: the discriminative PRM (LM-feature head on the frozen backbone, `train_prm`) on the
  set's training corpus (`build_corpus`) restricted to those problems; the heads share the backbone's head inputs.
* ActPRM: one active pass with the exact judge over those problems' responses, at the thresholds `actprm_model`
  chose on dev, per seed; the seed with the best dev F1 is kept.
* The implicit PRM (CE, DPO): θ from the policy, one epoch on those problems' outcome labels (`train_implicit`);
  the reference's values on the benchmark sets are computed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from prm_core.active.compare import CompareConfig
from prm_core.compare.frontier import (
    IMPLICIT,
    MC_SETS,
    METHODS,
    FrontierResult,
    Point,
    Tokens,
    budgets_of,
    method_costs,
    plan_points,
    problems_wanted,
    with_scores,
)
from prm_core.prm.corpus import CorpusConfig
from prm_core.prm.discriminative import PRMTrainConfig
from prm_core.prm.implicit import ImplicitConfig


@dataclass
class FrontierInputs:
    """The pool (problems and rollouts in pool order, every label set over it), the benchmark sets and the models."""

    domain: object
    problems: pl.DataFrame
    rollouts: pl.DataFrame
    labels: dict[str, pl.DataFrame]  # label set -> LABEL_SCHEMA rows over the whole pool
    mc: pl.DataFrame  # mc_estimates rows (method, problem_id, rollout_tokens)
    pb: pl.DataFrame
    bon: pl.DataFrame
    backbone: Path
    policy: Path
    backbone_train_tokens: int
    thresholds: tuple[float, float] | None  # ActPRM's (δ_pred, δ_std) from `actprm_model`; None: no ActPRM point
    separator: str = "\n"
    prm: PRMTrainConfig = field(default_factory=PRMTrainConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    implicit: ImplicitConfig = field(default_factory=ImplicitConfig)
    actprm: CompareConfig = field(default_factory=CompareConfig)
    resamples: int = 1000
    actprm_seeds: int = 3  # ActPRM's passes per point; the best on dev is kept
    _cache: dict = field(default_factory=dict)

    def prompts(self) -> dict[str, str]:
        from prm_core.domains.problems import prompts_frame

        return dict(prompts_frame(self.domain, self.problems).iter_rows())

    def order(self) -> tuple[str, ...]:
        return tuple(self.problems["problem_id"].to_list())

    def corpora(self) -> dict[str, pl.DataFrame]:
        """Each label set's training corpus over the whole pool (built once; a point takes its problems' rows); a
        set without labels has an empty one."""
        from prm_core.labels.denoised_labels import LABEL_SCHEMA
        from prm_core.prm.corpus import build_corpus

        if "corpora" not in self._cache:
            prompts, empty = self.prompts(), pl.DataFrame(schema=LABEL_SCHEMA)
            self._cache["corpora"] = {m: build_corpus(self.labels.get(m, empty), prompts, self.corpus)[0] for m in MC_SETS}
        return self._cache["corpora"]


def _sequence_tokens(tokenizer, separator: str, frame: pl.DataFrame, prompts: dict[str, str]) -> list[int]:
    """Prompt + steps tokens of every row, as the PRMs encode them."""
    from prm_core.prm.encoding import encode_many, separator_id

    return [len(e.input_ids) for e in encode_many(tokenizer, [prompts[p] for p in frame["problem_id"]],
                                                  frame["steps"].to_list(), separator_id(tokenizer, separator))]


def _by_problem(frame: pl.DataFrame, tokens: list[int]) -> dict[str, int]:
    return dict(frame.select("problem_id").with_columns(t=pl.Series(tokens, dtype=pl.Int64))
                .group_by("problem_id").agg(pl.col("t").sum()).iter_rows())


def _pair_tokens(rollouts: pl.DataFrame, tokens: list[int]) -> dict[str, int]:
    """Per problem, Σ over its (correct, incorrect) pairs of both sides' tokens: c·Σ_wrong + w·Σ_right."""
    out = {}
    for (p,), g in rollouts.select("problem_id", "correct").with_columns(t=pl.Series(tokens, dtype=pl.Int64)).group_by("problem_id"):
        right, wrong = g.filter(pl.col("correct"))["t"], g.filter(~pl.col("correct"))["t"]
        out[p] = int(right.len() * wrong.sum() + wrong.len() * right.sum())
    return out


def tokens_of(x: FrontierInputs) -> Tokens:
    """What every cost term counts, per problem, measured on the pool's own tables."""
    from transformers import AutoTokenizer

    from prm_core.evaluation.flops import model_params

    tok, prompts = AutoTokenizer.from_pretrained(x.backbone), x.prompts()
    responses = dict(x.rollouts.group_by("problem_id").agg(pl.col("num_tokens").sum()).iter_rows())
    rolled = {m: dict(g.group_by("problem_id").agg(pl.col("rollout_tokens").sum()).iter_rows())
              for (m,), g in x.mc.group_by("method")}
    corpus = {m: _by_problem(c, _sequence_tokens(tok, x.separator, c, prompts)) for m, c in x.corpora().items()}
    seqs = _sequence_tokens(tok, x.separator, x.rollouts, prompts)
    rows = {m: c.height for m, c in x.corpora().items()}
    finetune = {m: round(x.prm.steps * x.prm.batch_size * sum(corpus[m].values()) / rows[m]) if rows[m] else 0 for m in corpus}
    return Tokens(x.order(), responses, rolled, corpus, _by_problem(x.rollouts, seqs), _pair_tokens(x.rollouts, seqs),
                  finetune, x.backbone_train_tokens, model_params(x.policy), model_params(x.backbone))


def _discriminative(x: FrontierInputs, method: str, problems: set[str]) -> tuple[list, list, int] | None:
    """The LM-feature head on the frozen backbone (`<set>`), or the stock token classifier fine-tuned whole
    (`<set>_stock`, the GPU recipe: `prm_model`'s `features: false, freeze_backbone: false`)."""
    from transformers import AutoTokenizer

    from prm_core.prm.corpus import examples
    from prm_core.prm.discriminative import init_prm, score_steps, train_prm

    stock = method.endswith("_stock")
    corpus = x.corpora()[method.removesuffix("_stock")].filter(pl.col("problem_id").is_in(problems))
    if corpus.is_empty():
        return None  # e.g. SCAN on a policy too weak for any confident question: no PRM, as prm_model does
    tok = AutoTokenizer.from_pretrained(x.backbone)
    model = init_prm(x.backbone, tok, x.separator, seed=x.prm.seed, features=not stock)
    train_prm(model, tok, examples(corpus), x.separator, replace(x.prm, freeze_backbone=not stock))
    shared = None if stock else x._cache.setdefault("head_inputs", {})  # the frozen backbone's inputs, computed once
    pb, bon = (score_steps(model, tok, f["prompt"].to_list(), f["steps"].to_list(), x.separator, shared=shared)
               for f in (x.pb, x.bon))
    return pb, bon, int((corpus["source"] == "label").sum())


def _actprm(x: FrontierInputs, problems: set[str]) -> tuple[list, list, int]:
    """One active pass per seed (`actprm_seeds`) over the point's responses; the seed with the best dev F1 is kept
    (dev only, as the thresholds were chosen): a pass can collapse from its cold start, once its few first labels
    make every later batch look confident."""
    from prm_core.active.compare import new_heads
    from prm_core.active.features import StepFeatures, pool_of
    from prm_core.active.judges import ExactJudge
    from prm_core.active.pool import active_pass
    from prm_core.evaluation.benchmark_scores import processbench_scores
    from prm_core.prm.ensemble import step_scores

    if "pool" not in x._cache:  # the pool's and the benchmark sets' step inputs, once for every point
        features = StepFeatures.load(x.backbone, x.separator)
        x._cache["pool"] = (pool_of(features, x.domain, x.problems, x.rollouts), features.of(x.pb), features.of(x.bon))
    pool, pb, bon = x._cache["pool"]
    idx = [i for i, t in enumerate(pool.trajectories) if t.problem.problem_id in problems]
    inputs, trajectories = [pool.inputs[i] for i in idx], [pool.trajectories[i] for i in idx]
    best = None
    for seed in range(x.actprm_seeds if idx else 1):
        heads = new_heads(inputs or pool.inputs, x.actprm, seed)  # standardised by the point's own pool
        if idx:
            active_pass(heads, inputs, trajectories, ExactJudge(x.domain), x.actprm.active(True, *x.thresholds), seed)
        scores = step_scores(heads, pb)
        dev = processbench_scores(x.pb, scores)["dev_f1"]
        if best is None or dev > best[0]:
            best = (dev, scores, heads)
    return best[1], step_scores(best[2], bon), len(idx)


def _implicit(x: FrontierInputs, loss: str, problems: set[str]) -> tuple[dict, list, list, int] | None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prm_core.evaluation.benchmark_scores import implicit_scores
    from prm_core.prm.implicit import outcomes_of, step_values, train_implicit, trainable

    tok, prompts = AutoTokenizer.from_pretrained(x.policy), x.prompts()
    roll = x.rollouts.filter(pl.col("problem_id").is_in(problems))
    data = outcomes_of(roll.select("problem_id", "steps", "correct").iter_rows(), prompts)
    if not trainable(data, loss):
        return None  # no question both right and wrong: nothing for a paired loss to learn from
    theta, ref = AutoModelForCausalLM.from_pretrained(x.policy), AutoModelForCausalLM.from_pretrained(x.policy)
    cfg = replace(x.implicit, loss=loss)
    train_implicit(theta, ref, tok, data, x.separator, cfg)

    def values(model):
        return tuple(step_values(model, tok, f["prompt"].to_list(), f["steps"].to_list(), x.separator) for f in (x.pb, x.bon))

    if "ref_values" not in x._cache:
        x._cache["ref_values"] = values(ref)
    ref_values, own = x._cache["ref_values"], values(theta)
    row, pb_scores, bon_steps = implicit_scores(x.pb, (own[0], ref_values[0]), x.bon, (own[1], ref_values[1]), cfg.beta)
    return row, pb_scores, bon_steps, len(data)


def score_point(x: FrontierInputs, point: Point) -> tuple[dict, dict[str, pl.DataFrame]]:
    """`point`'s PRM trained on its problems and scored: its row (F1 at dev τ, best-of-N with min aggregation — the
    implicit PRM's w/ ref r_k, its paper's default — and its s.e.) and its per-sample frames; a point with nothing to
    train on has no scores (and no frames)."""
    from prm_core.evaluation.benchmark_scores import set_samples, set_scores

    problems = set(x.order()[: point.problems])
    responses = x.rollouts.filter(pl.col("problem_id").is_in(problems)).height
    if point.method in IMPLICIT:
        found = _implicit(x, point.method.removeprefix("implicit_"), problems)
    else:
        found = _actprm(x, problems) if point.method == "actprm" else _discriminative(x, point.method, problems)
    if found is None:
        return with_scores(point, dict.fromkeys(("f1", "tau", "bon", "bon_se", "majority")) | {"trained_responses": 0},
                           responses), {}
    if point.method in IMPLICIT:
        row, pb, bon, trained = found
        samples = set_samples(x.pb, pb, x.bon, bon, row["tau"])
    else:
        pb, bon, trained = found
        row, samples = set_scores(x.pb, pb, x.bon, bon)
    scores = {"f1": row["f1"], "tau": row["tau"], "bon": row["prm_min"], "bon_se": row["prm_min_stderr"],
              "majority": row["majority"], "trained_responses": trained}
    return with_scores(point, scores, responses), samples


def method_frontier(x: FrontierInputs, budget_problems: tuple[int, ...], methods: tuple[str, ...] = METHODS,
                    on_point: Callable[[dict], None] = lambda row: None) -> FrontierResult:
    """The compute-matched comparison: every method's costs measured on the pool, the budgets (vanilla MC on
    `budget_problems` problems), what each budget buys each method, and every point trained and scored."""
    costs = method_costs(tokens_of(x))
    return run_frontier(x, plan_points(costs, budgets_of(costs["vanilla"], budget_problems), methods), on_point)


def pool_wanted(x: FrontierInputs, budget_problems: tuple[int, ...], methods: tuple[str, ...] = METHODS) -> int:
    """How many problems the pool needs so that no point is capped (at the pool's mean per-problem costs)."""
    costs = method_costs(tokens_of(x))
    return problems_wanted(plan_points(costs, budgets_of(costs["vanilla"], budget_problems), methods))


def run_frontier(x: FrontierInputs, points: list[Point], on_point: Callable[[dict], None] = lambda row: None) -> FrontierResult:
    """Every point trained and scored, then per budget every pair of methods compared on the same rows (paired
    best-of-N, bootstrap F1), each point with its F1's bootstrap s.e."""
    from prm_core.evaluation.paired import paired_comparisons

    rows, samples = [], {}
    for p in points:
        if p.method == "actprm" and x.thresholds is None:
            continue  # no thresholds chosen on dev (`actprm_model` has not run): no ActPRM point
        row, frames = score_point(x, p)
        rows.append(row)
        if frames:
            samples.setdefault(p.budget, {})[p.method] = frames
        on_point(row)
    paired = []
    for budget, by_method in samples.items():
        pairs, f1_se = paired_comparisons(by_method, x.resamples)
        paired += [{"budget": budget, **r} for r in pairs]
        for r in rows:
            if r["budget"] == budget:
                r["f1_se"] = f1_se.get(r["method"])
    for r in rows:
        r.setdefault("f1_se", None)  # a budget where nothing was scored
    return FrontierResult(rows, paired, samples)
