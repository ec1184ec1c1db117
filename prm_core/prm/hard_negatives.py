"""Hard negatives for PRM training: a step its labels trust, with its result changed (testbed-probe.md §9).

The same step with a wrong result is the contrast a verifier must learn; it costs no rollouts. The result is
the last integer in the step; it is changed by a small, seeded edit (±1, ±2, ±10, or one digit) and the copy is
cut after that step, which is labelled 0. Only steps whose label is ≥ `min_label` (trusted as correct by the
method's own labels) are perturbed, so label noise carries over into the negatives as it would in use.
"""

from __future__ import annotations

import random
import re

_LAST_INT = re.compile(r"(-?\d+)(?!.*\d)")


def perturb_result(step: str, rng: random.Random) -> str | None:
    """`step` with its last integer changed, or None when it has no integer."""
    m = _LAST_INT.search(step)
    if not m:
        return None
    value = int(m.group(1))
    digits = str(abs(value))
    candidates = {value + d for d in (-10, -2, -1, 1, 2, 10)}
    for i in range(len(digits)):
        for d in "0123456789":
            if d != digits[i] and not (i == 0 and d == "0" and len(digits) > 1):
                candidates.add(int(digits[:i] + d + digits[i + 1:]) * (-1 if value < 0 else 1))
    candidates = sorted(c for c in candidates if c != value and c >= 0) or [value + 1]
    return step[: m.start()] + str(rng.choice(candidates)) + step[m.end():]


def hard_negative(steps: list[str], labels: list[float], rng: random.Random, min_label: float = 0.5):
    """(steps, labels) of one hard negative made from a trusted step, or None when there is none."""
    trusted = [t for t, y in enumerate(labels) if y >= min_label and _LAST_INT.search(steps[t])]
    if not trusted:
        return None
    t = rng.choice(trusted)
    return steps[:t] + [perturb_result(steps[t], rng)], list(labels[:t]) + [0.0]
