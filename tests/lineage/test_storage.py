"""Data-dir storage: what reading a damaged table says."""

import pytest


def test_a_damaged_table_is_an_error_naming_its_file(tmp_path):
    from prm_core.lineage.storage import TableReadError, read_parquet

    bad = tmp_path / "rollouts" / "arith-0000.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(TableReadError, match=r"rollouts/arith-0000\.parquet: not a readable Parquet table .*rerun"):
        read_parquet(bad)
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "missing.parquet")
