"""Which PRM data is worth its compute: every method on one FLOP axis at matched budgets (issue 29; algorithms.md §4.3).

A method m's all-in cost of the first n problems of the pool (pool order: shard, then problem):

    C_m(n) = F_m + Σ_{i ≤ n} c_m(i)                                   (evaluation/flops.py's units)

* F_m, what does not grow with the data: the PRM backbone's training (6·P·tokens) for every PRM on it (the MC label
  sets, the oracle, ActPRM), and for the stock token classifier (`<set>_stock`, opt-in) its fine-tuning too (steps
  × batch × mean sequence length); nothing for the implicit PRM (θ starts from the policy).
* c_m(i), problem i's share: its responses (2·P·generated tokens); its MC rollouts (vanilla, SCAN, SCAN-binary);
  the frozen backbone's forward over its training sequences (MC sets, oracle) or over all its responses (ActPRM's
  pool); for the implicit PRM one epoch of θ's training (6·P) over its responses (CE) or its (correct, incorrect)
  pairs (DPO), and the reference's forward (2·P) over its responses.

A budget B buys n_m(B) = max{n : C_m(n) ≤ B} problems; the PRM is trained on their labels and scored on the shared
benchmark sets. Budgets default to vanilla MC's cost on 40, 80 and 160 problems. Where the pool is too small for
what a budget buys, the point is `capped` and `problems_wanted` says how many it would buy at the pool's mean c_m
(`prm compare` grows the pool by shards to that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from prm_core.evaluation.flops import forward_flops, generation_flops, training_flops

MC_SETS = ("vanilla", "scan", "scan_binary", "oracle")  # discriminative PRMs on a label set (oracle: exact labels)
IMPLICIT = ("implicit_ce", "implicit_dpo")
METHODS = (*MC_SETS, "actprm", *IMPLICIT)  # the default frontier: the LM-feature head on the frozen backbone
STOCK = tuple(f"{m}_stock" for m in MC_SETS)  # the GPU recipe: the stock token classifier, fine-tuned whole (opt-in)


@dataclass(frozen=True)
class MethodCost:
    """F_m and c_m(i) in pool order (FLOPs)."""

    method: str
    fixed: float
    per_problem: tuple[float, ...]

    def total(self, n: int) -> float:
        return self.fixed + sum(self.per_problem[:n])  # C_m(n)

    def affordable(self, budget: float) -> int:
        """n_m(B): the most problems (a prefix of the pool) whose all-in cost fits the budget."""
        spent, n = self.fixed, 0
        for c in self.per_problem:
            if spent + c > budget:
                break
            spent, n = spent + c, n + 1
        return n

    def wanted(self, budget: float) -> int:
        """What the budget would buy from a pool large enough, at the pool's mean c_m (≥ what this pool has)."""
        n = self.affordable(budget)
        if n < len(self.per_problem) or not self.per_problem:
            return n
        mean = sum(self.per_problem) / len(self.per_problem)
        return n + max(0, math.floor((budget - self.total(n)) / mean)) if mean > 0 else n


@dataclass(frozen=True)
class Tokens:
    """Per problem (pool order), what each cost term counts: generated response tokens, MC rollout tokens per method,
    the frozen backbone's forward tokens over each MC set's training sequences and over all responses (prompt
    included), and the sizes of the models that spend them."""

    problems: tuple[str, ...]
    responses: dict[str, int]
    rollouts: dict[str, dict[str, int]]  # method -> problem -> MC rollout tokens
    corpus: dict[str, dict[str, int]]  # label set -> problem -> training-sequence tokens
    sequences: dict[str, int]  # problem -> prompt + response tokens of all its responses
    pair_sequences: dict[str, int]  # problem -> the same summed over its (correct, incorrect) pairs, both sides (DPO)
    finetune_tokens: dict[str, int]  # label set -> what fine-tuning the stock classifier trains: steps × batch × mean length
    backbone_train_tokens: int
    policy_params: int
    backbone_params: int


def method_costs(t: Tokens) -> dict[str, MethodCost]:
    """F_m and c_m(i) of every method from the tokens each term counts."""
    fixed = training_flops(t.backbone_train_tokens, t.backbone_params)  # the backbone every non-implicit PRM reads
    gen = {p: generation_flops(t.responses.get(p, 0), t.policy_params) for p in t.problems}
    out = {}
    for m in MC_SETS:
        rolled, fed = t.rollouts.get(m, {}), t.corpus.get(m, {})
        out[m] = MethodCost(m, fixed, tuple(gen[p] + generation_flops(rolled.get(p, 0), t.policy_params)
                                            + forward_flops(fed.get(p, 0), t.backbone_params) for p in t.problems))
    for m in MC_SETS:  # fine-tuned whole: its training is fixed by its steps, and no frozen forward is needed
        rolled = t.rollouts.get(m, {})
        out[f"{m}_stock"] = MethodCost(f"{m}_stock", fixed + training_flops(t.finetune_tokens.get(m, 0), t.backbone_params),
                                       tuple(gen[p] + generation_flops(rolled.get(p, 0), t.policy_params) for p in t.problems))
    out["actprm"] = MethodCost("actprm", fixed, tuple(gen[p] + forward_flops(t.sequences.get(p, 0), t.backbone_params)
                                                      for p in t.problems))  # the exact judge costs nothing
    trained = {"implicit_ce": t.sequences, "implicit_dpo": t.pair_sequences}
    for m in IMPLICIT:  # one epoch: θ trained on every response (CE) or pair (DPO) (6P), π_ref's forward once (2P)
        out[m] = MethodCost(m, 0.0, tuple(gen[p] + training_flops(trained[m].get(p, 0), t.policy_params)
                                          + forward_flops(t.sequences.get(p, 0), t.policy_params) for p in t.problems))
    return out


def budgets_of(vanilla: MethodCost, problems: tuple[int, ...]) -> dict[str, float]:
    """The budgets named `b<n>`: vanilla MC's all-in cost on the first n problems."""
    return {f"b{n}": vanilla.total(n) for n in problems}


@dataclass(frozen=True)
class Point:
    """One method at one budget: what it bought and the data it trains on (the first `problems` of the pool)."""

    method: str
    budget: str
    budget_flops: float
    problems: int
    flops: float  # C_m(problems): what it spent
    capped: bool  # the pool ran out before the budget did
    problems_wanted: int


def plan_points(costs: dict[str, MethodCost], budgets: dict[str, float], methods: tuple[str, ...] = METHODS) -> list[Point]:
    """Every (method, budget) point: the problems it buys, what they cost, and whether the pool capped it."""
    points = []
    for name, b in budgets.items():
        for m in methods:
            c = costs[m]
            n = c.affordable(b)
            wanted = c.wanted(b)
            points.append(Point(m, name, b, n, c.total(n), wanted > n, wanted))
    return points


def problems_wanted(points: list[Point]) -> int:
    """The pool size that would cap no point."""
    return max((p.problems_wanted for p in points), default=0)


@dataclass
class FrontierResult:
    """The frontier's rows (one per point, with its scores), the paired comparisons per budget, and its summary."""

    rows: list[dict]
    paired: list[dict]
    samples: dict[str, dict[str, dict[str, pl.DataFrame]]] = field(default_factory=dict)  # budget -> method -> frames

    def summary(self) -> dict:
        """`frontier.<method>.<budget>.{f1,bon,flops,responses}` and more per point (the issue's contract)."""
        out = {}
        for r in self.rows:
            key = f"frontier.{r['method']}.{r['budget']}"
            out.update({f"{key}.{k}": r[k] for k in ("f1", "f1_se", "bon", "bon_se", "flops", "responses", "problems")
                        if r.get(k) is not None})
            out[f"{key}.capped"] = r["capped"]
        for p in self.paired:
            key = f"frontier.paired.{p['budget']}.{p['a']}_vs_{p['b']}"
            out.update({f"{key}.bon_diff": p["bon_diff"], f"{key}.bon_diff_se": p["bon_diff_se"],
                        f"{key}.bon_separable": p["bon_separable"]})
        return out


def with_scores(point: Point, scores: dict, responses: int) -> dict:
    """A frontier row: the point, the responses its problems hold, and its benchmark numbers."""
    return {**vars(point), "responses": responses, **scores}


def _pm(v, se=None) -> str:
    return "-" if v is None else f"{v:.3f}" + ("" if se is None else f" ± {se:.3f}")


def point_line(r: dict) -> str:
    """One frontier row in words (the asset's log line per point)."""
    return (f"{r['method']} at {r['budget']}: {r['problems']} problems{' (capped by the pool)' if r['capped'] else ''}, "
            f"F1 {_pm(r.get('f1'))}, best-of-N {_pm(r.get('bon'))}")


def format_frontier(rows: list[dict], paired: list[dict]) -> str:
    """The frontier as the terminal shows it: per budget, each method's problems, TFLOPs, F1 and best-of-N ± s.e.,
    then the pairs of methods whose best-of-N difference is beyond 2 s.e. (paired)."""
    lines = [f"{'budget':<7} {'method':<13} {'problems':>9} {'TFLOPs':>8} {'F1':>15} {'best-of-N':>15}"]
    for r in rows:
        problems = f"{r['problems']}{'+' if r['capped'] else ''}"
        lines.append(f"{r['budget']:<7} {r['method']:<13} {problems:>9} {r['flops'] / 1e12:>8.3f} "
                     f"{_pm(r.get('f1'), r.get('f1_se')):>15} {_pm(r.get('bon'), r.get('bon_se')):>15}")
    apart = [f"{p['budget']}: {p['a']} vs {p['b']} {p['bon_diff']:+.3f} ± {p['bon_diff_se']:.3f}"
             for p in paired if p["bon_separable"]]
    lines.append("+: capped (the pool ran out before the budget did)")
    lines.append("best-of-N separable (paired, > 2 s.e.): " + ("; ".join(apart) if apart else "no pair"))
    return "\n".join(lines)
