"""Run records (timings, run ids, paths) apart from the reproducible files."""

from prm_core.lineage.run_info import is_run_record, read_run_info, update_run_info
from prm_core.lineage.storage import md5_dir


def test_a_folder_hash_leaves_its_run_info_out(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"w")
    before = md5_dir(tmp_path)
    update_run_info(tmp_path, {"train_seconds": 1.25})
    update_run_info(tmp_path, {"mlflow_run_id": "abc"})
    assert md5_dir(tmp_path) == before and read_run_info(tmp_path) == {"train_seconds": 1.25, "mlflow_run_id": "abc"}
    assert read_run_info(tmp_path / "missing") == {}


def test_run_records_are_run_info_files_and_the_summary():
    assert is_run_record("models/prm/scan/run_info.json") and is_run_record("reports/summary.json")
    assert not is_run_record("reports/label_audit_cost.parquet") and not is_run_record("models/prm/summary.json")
