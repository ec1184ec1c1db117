"""Benchmark sets for PRMs: a ProcessBench-style set with exact labels, best-of-N candidates, real ProcessBench.

* `processbench_set`: fresh problems, one policy sample each, exact first errors from the checker; balanced
  between erroneous and all-correct responses and split into dev and test (the threshold is chosen on dev).
* `bon_candidates`: N policy samples per fresh problem, graded, for best-of-N.
* `load_processbench`: the real ProcessBench split files (`id`, `generator`, `problem`, `steps`,
  `final_answer_correct`, `label`).
"""

from __future__ import annotations

import json
import random

import polars as pl

from prm_core.domains.base import ExactDomain
from prm_core.domains.problems import problems_frame, prompts_frame
from prm_core.generation.rollouts import sample_rollouts
from prm_core.generation.sampling import Engine, SamplingSpec
from prm_core.labels.step_truth import label_rollouts

PROCESSBENCH_SEED = 30_000_000  # fresh problems: disjoint from training (10M+), eval (20M+) and pool seeds
BON_SEED = 40_000_000
OVERSAMPLE = 4  # problems sampled per response asked of each class: ≥ 2 fills at least one class
DEV_SHARE = 0.5

PB_SCHEMA = {
    "id": pl.String,
    "generator": pl.String,
    "problem": pl.String,
    "prompt": pl.String,
    "steps": pl.List(pl.String),
    "final_answer_correct": pl.Boolean,
    "label": pl.Int32,
    "split": pl.String,
}


def processbench_set(domain: ExactDomain, engine: Engine, n_per_class: int, seed: int, generator: str = "policy",
                     dev_share: float = DEV_SHARE, max_new_tokens: int = 192, oversample: int = OVERSAMPLE) -> pl.DataFrame:
    """`n_per_class` erroneous and `n_per_class` all-correct responses, split into dev and test."""
    n_problems = max(1, oversample * n_per_class)
    pool = problems_frame(domain.problems(n_problems, PROCESSBENCH_SEED + seed), "processbench")
    roll = sample_rollouts(domain, engine, pool, SamplingSpec(n=1, temperature=1.0, max_new_tokens=max_new_tokens, seed=seed))
    truth = label_rollouts(domain, pool, roll)
    prompts = prompts_frame(domain, pool)
    rows = (  # the rollouts' order (the seeded sample below depends on it; polars joins keep none by default)
        roll.join(truth.select("response_id", "first_error"), on="response_id", maintain_order="left")
        .join(pool.select("problem_id", "question"), on="problem_id", maintain_order="left")
        .join(prompts, on="problem_id", maintain_order="left")
        .select("response_id", "question", "prompt", "steps", "correct", "first_error")
    )
    rng = random.Random(f"processbench-{seed}")
    erroneous = [r for r in rows.iter_rows(named=True) if r["first_error"] >= 0]
    correct = [r for r in rows.iter_rows(named=True) if r["first_error"] == -1]
    if not erroneous and not correct:
        raise ValueError(f"no usable policy responses among {n_problems} problems")
    out = []  # a class short of `n_per_class` (a weak or a perfect policy) keeps what there is; the counts say so
    for cls in (rng.sample(erroneous, min(n_per_class, len(erroneous))), rng.sample(correct, min(n_per_class, len(correct)))):
        n_dev = int(round(dev_share * len(cls)))
        for i, r in enumerate(cls):
            out.append((r["response_id"], generator, r["question"], r["prompt"], r["steps"], r["correct"],
                        r["first_error"], "dev" if i < n_dev else "test"))
    return pl.DataFrame(out, schema=PB_SCHEMA, orient="row")


def processbench_violations(pb: pl.DataFrame, n_per_class: int, dev_share: float = DEV_SHARE) -> list[str]:
    """What shows that a `processbench_set` table was not built as promised: no rows, a repeated id, a label outside
    [-1, steps), an all-correct response with a wrong answer, a class over `n_per_class` or both short (one class is
    always full: the builder samples `OVERSAMPLE`·n problems), a class not split `dev_share` dev. Empty: sound."""
    if pb.is_empty():
        return ["no responses"]
    problems = []
    if pb["id"].n_unique() != pb.height:
        problems.append(f"{pb.height - pb['id'].n_unique()} repeated ids")
    bad = pb.filter((pl.col("label") < -1) | (pl.col("label") >= pl.col("steps").list.len())
                    | ((pl.col("label") == -1) & ~pl.col("final_answer_correct")))
    if bad.height:
        problems.append(f"{bad.height} labels outside [-1, steps) or all-correct with a wrong answer, e.g. {bad['id'][0]!r}")
    counts = {}
    for name, cls in (("erroneous", pb.filter(pl.col("label") >= 0)), ("all-correct", pb.filter(pl.col("label") == -1))):
        counts[name] = cls.height
        n_dev = int((cls["split"] == "dev").sum())
        if n_dev != int(round(dev_share * cls.height)) or n_dev + int((cls["split"] == "test").sum()) != cls.height:
            problems.append(f"{name}: {n_dev} of {cls.height} in dev, {cls.height - n_dev} elsewhere; asked {dev_share:.0%} dev, rest test")
    if max(counts.values()) != n_per_class:
        problems.append(f"classes {counts}: the fuller one must hold the {n_per_class} asked")
    return problems


def bon_candidates(domain: ExactDomain, engine: Engine, n_problems: int, n: int, seed: int,
                   max_new_tokens: int = 192) -> pl.DataFrame:
    """N graded policy samples for each of `n_problems` fresh problems (plus a greedy one, for reference)."""
    pool = problems_frame(domain.problems(n_problems, BON_SEED + seed), "bon")
    sampled = sample_rollouts(domain, engine, pool, SamplingSpec(n=n, temperature=1.0, max_new_tokens=max_new_tokens, seed=seed))
    greedy = sample_rollouts(domain, engine, pool, SamplingSpec(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed))
    greedy = greedy.select("problem_id", greedy_correct=pl.col("correct"))
    keep = {"on": "problem_id", "maintain_order": "left"}  # the samples' order: a written table, byte-reproducible
    return sampled.join(pool.select("problem_id", "question"), **keep).join(prompts_frame(domain, pool), **keep).join(greedy, **keep)


def load_processbench(path) -> pl.DataFrame:
    """One split of the real ProcessBench (a JSON array), with `split` named after the file."""
    from prm_core.lineage.storage import as_path

    path = as_path(path)
    rows = json.loads(path.read_text())
    for i, r in enumerate(rows):
        missing = {"id", "problem", "steps", "label"} - set(r)
        if missing:
            raise ValueError(f"{path}: row {i} lacks {sorted(missing)}")
    return pl.DataFrame(
        [(r["id"], r.get("generator", ""), r["problem"], r["problem"] + "\n\n", list(r["steps"]),
          bool(r.get("final_answer_correct", False)), int(r["label"]), path.stem) for r in rows],
        schema=PB_SCHEMA, orient="row",
    )


def load_processbench_dir(folder, rows_per_split: int = 0) -> pl.DataFrame | None:
    """Every split file (`*.json`) of a real ProcessBench folder, the first `rows_per_split` rows of each (0: all);
    None when the folder does not exist."""
    from prm_core.lineage.storage import as_path

    folder = as_path(folder)
    if not folder.exists():
        return None
    real = pl.concat([load_processbench(f) for f in sorted(folder.glob("*.json"))])
    return real.group_by("split", maintain_order=True).head(rows_per_split) if rows_per_split else real
