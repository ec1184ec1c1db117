"""Every export of a label set loads in its consumer and round-trips row counts and labels."""

import json

import polars as pl
import pytest

from prm_core.evaluation.benchmark_sets import load_processbench
from prm_core.labels.denoised_labels import LabelConfig, build_labels
from prm_core.labels.exports import FORMATS, export, export_rows, first_error_of, parse_math_shepherd
from prm_core.labels.mc_estimates import AnnotationConfig, annotate
from tests.support.labels import SPEC, D, scripted_set


@pytest.fixture(scope="module")
def rows():
    engine, responses, sc = scripted_set()
    steps = {r.response_id: r.steps for r in responses}
    frames = []
    for method in ("vanilla", "scan"):
        mc, _ = annotate(method, D, engine, responses, sc, AnnotationConfig(), SPEC)
        labels, _ = build_labels(mc.with_columns(shard=pl.lit("s")), steps, LabelConfig(balance=False))
        frames.append(labels)
    labels = pl.concat(frames)
    problems = pl.DataFrame({"problem_id": [r.problem.problem_id for r in responses],
                             "question": [r.problem.question for r in responses],
                             "prompt": [D.prompt(r.problem) for r in responses]}).unique("problem_id", keep="first")
    rollouts = pl.DataFrame({"response_id": [r.response_id for r in responses], "correct": [r.correct for r in responses]})
    return export_rows(labels, problems, rollouts, model_version="policy@abc123")


def test_every_format_loads_and_round_trips(rows, tmp_path):
    import datasets

    written = export(rows, tmp_path)
    assert set(written) == set(FORMATS)
    n = rows.height
    trl = datasets.load_dataset("json", data_files=written["trl"], split="train")
    assert trl.num_rows == n and trl.column_names == ["prompt", "completions", "labels"]
    assert trl["labels"] == [[bool(h) for h in r] for r in rows["hard_labels"].to_list()]
    pb = load_processbench(written["processbench"])
    assert pb.height == n and pb["label"].to_list() == [first_error_of(h) for h in rows["hard_labels"].to_list()]
    scan = [json.loads(line) for line in open(written["scan"])]
    assert [r["scores"] for r in scan] == rows["labels"].to_list() and set(scan[0]) == {"question", "steps", "scores"}
    ms = [json.loads(line) for line in open(written["math_shepherd"])]
    assert [parse_math_shepherd(r["label"]) for r in ms] == [[bool(h) for h in r] for r in rows["hard_labels"].to_list()]
    assert all(r["input"].count("ки") == len(s) for r, s in zip(ms, rows["steps"].to_list()))
    hf = datasets.load_dataset(written["hf"], split="train")
    assert hf.num_rows == n and {"problem_id", "response_id", "method", "rollouts", "model_version"} <= set(hf.column_names)
    assert hf["labels"] == rows["labels"].to_list()
    card = open(f"{written['hf']}/README.md").read()
    assert card.startswith("---") and f"rows: {n} responses" in card


def test_unknown_format_is_refused(rows, tmp_path):
    with pytest.raises(ValueError, match="unknown export formats"):
        export(rows, tmp_path, formats=["csv"])
