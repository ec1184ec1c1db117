"""Run info (timings, run ids, paths) apart from the reproducible files, and the summary read across both."""

import json

import pytest

from prm_core.lineage.run_info import read_run_info, update_run_info
from prm_core.lineage.storage import md5_dir, write_json
from prm_core.lineage.summary import read_summary, summary_dir, summary_path, update_summary


def test_summary_keys_in_run_info_are_read_under_their_names(tmp_path):
    update_summary(tmp_path, {"rollouts.count": 8})
    update_run_info(summary_dir(tmp_path), {"run.seconds": 3.5, "run.id": "abc"})
    update_run_info(summary_dir(tmp_path), {"rollouts.tokens_per_s": 100.0})
    assert read_summary(tmp_path) == {"rollouts.count": 8, "run.seconds": 3.5, "run.id": "abc", "rollouts.tokens_per_s": 100.0}
    assert json.loads(summary_path(tmp_path).read_text()) == {"rollouts.count": 8}
    with pytest.raises(ValueError, match=r"run\.seconds.*update_run_info"):
        update_summary(tmp_path, {"run.seconds": 1.0})


def test_an_older_summary_gives_its_timings_up_to_run_info(tmp_path):
    write_json({"rollouts.count": 8, "run.seconds": 9.0}, summary_path(tmp_path))
    update_run_info(summary_dir(tmp_path), {"run.seconds": 3.5})
    assert read_summary(tmp_path)["run.seconds"] == 3.5
    update_summary(tmp_path, {"pool.problems": 4})
    assert json.loads(summary_path(tmp_path).read_text()) == {"rollouts.count": 8, "pool.problems": 4}


def test_a_folder_hash_leaves_its_run_info_out(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"w")
    before = md5_dir(tmp_path)
    update_run_info(tmp_path, {"train_seconds": 1.25})
    assert md5_dir(tmp_path) == before and read_run_info(tmp_path) == {"train_seconds": 1.25}
    assert read_run_info(tmp_path / "missing") == {}
