"""SCAN's confidence-scaled soft label of a step (algorithms.md §2.3 step 7).

For an incorrect response with detected error t_e and the question's self-confidence SC:

    ŷ_t = min(c_t / SC(q), 1)   if t_e - t ≤ d        (the d steps before t_e, and t_e itself: c_{t_e} = 0)
    ŷ_t = 1[c_t > 0] = 1        otherwise (t < t_e - d)
"""

from __future__ import annotations


def scan_soft_labels(values: list[float | None], t_e: int, sc: float, d: int) -> list[float]:
    """ŷ_0..ŷ_{t_e} for a negative. Steps before the window may be unvisited (binary search): c_t > 0 there."""
    out = []
    for t in range(t_e + 1):
        c = values[t]
        if t_e - t <= d:
            if c is None:
                raise ValueError(f"step {t} lies in the soft-label window (t_e={t_e}, d={d}) but has no MC value")
            out.append(min(c / sc, 1.0) if sc > 0 else 0.0)  # min(c_t / SC, 1)
        else:
            out.append(1.0 if c is None or c > 0 else 0.0)  # 1[c_t > 0]
    return out
