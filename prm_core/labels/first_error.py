"""Finding the predicted first error `t_e = min{t : c_t = 0}` of responses (algorithms.md §1.3, §2.2).

Three ways, each batched across responses (one engine call per round):

* `value_all_steps`: vanilla MC — every step of every response (K·T rollouts).
* `search_sequential`: SCAN — t = 0, 1, 2, … and stop at the first c_t == 0 (K·(t_e+1) rollouts); the last step
  is rolled out too, as in SCAN's code (the other two take the response's own grade as c_T).
* `search_binary`: OmegaPRM-style binary search over prefixes for the first zero, assuming that once a prefix
  is wrong the policy cannot recover (K·⌈log2 T⌉ rollouts); recovery breaks the assumption, which is what the
  label audit measures.

`value_soft_window` then values the d steps before each found zero that a search skipped, so every SCAN variant
has the c_t its soft labels need (algorithms.md §2.2: min(c_t/SC, 1) for t_e - d ≤ t < t_e).

A response with no zero among its visited steps keeps `first_zero = -1` (SCAN drops it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from prm_core.domains.base import Domain
from prm_core.generation.sampling import Engine, SamplingSpec
from prm_core.labels.mc_value import Response, RolloutCost, mc_values


@dataclass
class StepValues:
    response: Response
    values: list[float | None]  # c_t, None where not visited
    first_zero: int = -1


def _new(responses: list[Response]) -> dict[str, StepValues]:
    return {r.response_id: StepValues(r, [None] * len(r.steps)) for r in responses}


def _round_spec(spec: SamplingSpec, round_index: int) -> SamplingSpec:
    return replace(spec, seed=spec.seed * 1_009 + round_index)


def value_all_steps(domain: Domain, engine: Engine, responses: list[Response], k: int, spec: SamplingSpec):
    """Vanilla MC: c_t of every step of every response."""
    out = _new(responses)
    queries = [(r, t) for r in responses for t in range(len(r.steps))]
    values, cost = mc_values(domain, engine, queries, k, _round_spec(spec, 0))
    for (r, t), v in zip(queries, values):
        out[r.response_id].values[t] = v
    for sv in out.values():
        sv.first_zero = next((t for t, v in enumerate(sv.values) if v == 0), -1)
    return list(out.values()), cost


def search_sequential(domain: Domain, engine: Engine, responses: list[Response], k: int, spec: SamplingSpec,
                      rollout_last: bool = True):
    """SCAN: value steps in order and stop each response at its first zero. As SCAN's code, the last step is rolled
    out too (`rollout_last`), so an incorrect response whose completions still reach the answer has no zero."""
    out, cost = _new(responses), RolloutCost()
    active, t = list(responses), 0
    while active:
        queries = [(r, t) for r in active]
        values, c = mc_values(domain, engine, queries, k, _round_spec(spec, t), rollout_last)
        cost.add(c)
        still = []
        for (r, _), v in zip(queries, values):
            sv = out[r.response_id]
            sv.values[t] = v
            if v == 0:
                sv.first_zero = t
            elif t < r.last:
                still.append(r)
        active, t = still, t + 1
    return list(out.values()), cost


def search_binary(domain: Domain, engine: Engine, responses: list[Response], k: int, spec: SamplingSpec):
    """Binary search for the first zero between step 0 and the last step (whose value is the grade)."""
    out, cost = _new(responses), RolloutCost()
    lo, hi = {}, {}
    for r in responses:
        out[r.response_id].values[r.last] = float(r.correct)
        if not r.correct:  # c_last == 0: the first zero lies in [0, last]
            lo[r.response_id], hi[r.response_id] = 0, r.last
    by_id = {r.response_id: r for r in responses}
    round_index = 0
    while any(lo[i] < hi[i] for i in lo):
        queries = [(by_id[i], (lo[i] + hi[i]) // 2) for i in lo if lo[i] < hi[i]]
        values, c = mc_values(domain, engine, queries, k, _round_spec(spec, round_index))
        cost.add(c)
        for (r, mid), v in zip(queries, values):
            out[r.response_id].values[mid] = v
            if v == 0:
                hi[r.response_id] = mid
            else:
                lo[r.response_id] = mid + 1
        round_index += 1
    for i in lo:
        out[i].first_zero = hi[i]
    return list(out.values()), cost


def value_soft_window(domain: Domain, engine: Engine, searched: list[StepValues], k: int, spec: SamplingSpec, d: int):
    """c_t of the unvisited steps t_e-d..t_e-1 of every response with a zero (none after a sequential search).

    A window step that turns out to be zero is the earlier first zero (t_e = min{t : c_t = 0}); its own window is
    then valued in the next round, until no response moves.
    """
    total, round_index = RolloutCost(), 0
    while True:
        queries = [(sv.response, t) for sv in searched if sv.first_zero > 0
                   for t in range(max(0, sv.first_zero - d), sv.first_zero) if sv.values[t] is None]
        if not queries:
            return searched, total
        values, cost = mc_values(domain, engine, queries, k, _round_spec(spec, 10_000 + round_index))
        total.add(cost)
        by_id = {sv.response.response_id: sv for sv in searched}
        for (r, t), v in zip(queries, values):
            by_id[r.response_id].values[t] = v
        for sv in searched:
            sv.first_zero = next((t for t, v in enumerate(sv.values) if v == 0), sv.first_zero)
        round_index += 1
