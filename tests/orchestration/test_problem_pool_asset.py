"""The `problem_pool` asset on the bad-input corpus (one shard per file) and on empty generated shards: every
shard materializes, empty ones say so, the summary counts what was written."""

import json

import dagster as dg
import polars as pl
import pytest

from assets.common.partitions import shards
from assets.common.resources import DomainResource, StorageResource
from assets.problem_pool import problem_pool
from orchestration.cli import RANGE_END, RANGE_START
from prm_core.domains.problems import POOL_SCHEMA, ProblemFileError
from prm_core.lineage.storage import read_parquet
from tests.support.domains import EXPECTED, FILES, SKIPPED
from tests.support.pipeline import by_partition


def _materialize(data, keys, pool_config):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, keys)
        result = dg.materialize(
            [problem_pool], instance=instance,
            resources={"storage": StorageResource(base_dir=str(data)), "domain": DomainResource()},
            run_config={"ops": {"problem_pool": {"config": pool_config}}},
            tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
        )
    return result, by_partition(result, "problem_pool")


def test_the_corpus_folder_materializes_shard_by_shard_with_its_expected_counts(tmp_path):
    keys = sorted(name.rsplit(".", 1)[0] for name in EXPECTED)
    stem = {name.rsplit(".", 1)[0]: name for name in EXPECTED}
    data = tmp_path / "data"
    result, md = _materialize(data, keys, {"source": str(FILES)})
    assert result.success
    ok = {k: sum("ok" in v for v in EXPECTED[stem[k]].values()) for k in keys}
    bad = {k: len(EXPECTED[stem[k]]) - ok[k] for k in keys}
    for key in keys:
        pool = read_parquet(data / "problem_pool" / f"{key}.parquet")  # by its literal name: `glob[1],*` is one
        quarantine = read_parquet(data / "problem_pool_quarantine" / f"{key}.parquet")
        assert pool.schema == pl.Schema(POOL_SCHEMA) and (pool.height, quarantine.height) == (ok[key], bad[key]), key
    # each shard's event: its own rows and quarantine, no other shard's; every event: the run's totals
    assert {k: (md[k]["dagster/row_count"], md[k]["quarantined_rows"]) for k in keys} == {k: (ok[k], bad[k]) for k in keys}
    run = md[keys[0]]
    assert run["run/quarantined_rows"] == sum(bad.values())
    assert run["run/empty_shards"] == [k for k in keys if ok[k] == 0] and "empty" in run["run/empty_shards"]
    summary = json.loads((data / "reports" / "summary.json").read_text())
    assert (summary["pool.problems"], summary["pool.shards"], summary["pool.quarantined"]) == (
        sum(ok.values()), len(keys), sum(bad.values()))
    # what the folder holds besides problem files: one quarantine row each, file and reason, no content
    skipped = pl.read_parquet(data / "problem_pool_skipped.parquet")
    assert sorted(skipped["file"].to_list()) == sorted(str(FILES / name) for name in SKIPPED)
    assert all(why.startswith(SKIPPED[f.rsplit("/", 1)[1]]) for f, why in skipped.select("file", "reason").iter_rows())
    assert skipped["raw"].null_count() == skipped.height and summary["pool.skipped_files"] == len(SKIPPED)
    assert run["run/skipped_files"] == len(SKIPPED)


def test_generated_shards_of_size_zero_are_empty_frames(tmp_path):
    keys = ["arith-0000", "arith-0001"]
    data = tmp_path / "data"
    result, md = _materialize(data, keys, {"shard_size": 0})
    assert result.success and all(md[k]["dagster/row_count"] == 0 and md[k]["run/empty_shards"] == keys for k in keys)
    for key in keys:
        pool = pl.read_parquet(data / "problem_pool" / f"{key}.parquet")
        assert pool.height == 0 and pool.schema == pl.Schema(POOL_SCHEMA)
    summary = json.loads((data / "reports" / "summary.json").read_text())
    assert (summary["pool.problems"], summary["pool.shards"], summary["pool.quarantined"]) == (0, 2, 0)


def test_two_files_of_one_stem_fail_the_step_naming_both(tmp_path):
    src = tmp_path / "problems"
    src.mkdir()
    (src / "x.jsonl").write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    (src / "x.parquet").write_bytes((FILES / "parquet_ints.parquet").read_bytes())
    with pytest.raises(ProblemFileError, match=r"shard key 'x': .*x\.jsonl and .*x\.parquet"):
        _materialize(tmp_path / "data", ["x"], {"source": str(src)})
