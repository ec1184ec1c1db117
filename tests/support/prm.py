"""Two hand-made PRM examples (a right and a wrong solution) and a training corpus of them."""

from pathlib import Path

import polars as pl

from prm_core.prm.corpus import CORPUS_SCHEMA
from prm_core.prm.encoding import PRMExample

GOOD = PRMExample("Tom has 3 pens. How many now?\n", ["finds 2 more: 3 + 2 = 5", "Answer: 5"], [1.0, 1.0])
BAD = PRMExample("Sam has 4 pens. How many now?\n", ["loses 1: 4 - 1 = 9", "Answer: 9"], [0.0, 0.0])


def corpus_file(path: Path) -> Path:
    rows = [("vanilla", f"e{i}", f"r{i}", "p", "s0", "label", ex.prompt, ex.steps, ex.targets, 1.0, 8)
            for i, ex in enumerate([GOOD, BAD] * 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=CORPUS_SCHEMA, orient="row").write_parquet(path)
    return path
