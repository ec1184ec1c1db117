"""A table and its fingerprint never disagree: a run killed after writing a table but before its fingerprint leaves a
table that nothing vouches for (computed again), never a new table under the old inputs' fingerprint."""

import polars as pl
import pytest

from assets.common import metadata
from assets.common.metadata import compute_or_reuse, is_current


def test_a_run_killed_between_table_and_fingerprint_never_pairs_them_wrongly(tmp_path, monkeypatch):
    path = tmp_path / "rollouts" / "arith-0000.parquet"
    old, new = {"seed": 0}, {"seed": 1}
    compute_or_reuse(path, old, True, lambda: pl.DataFrame({"seed": [0]}))
    assert is_current(path, old)

    def killed(*_):
        raise KeyboardInterrupt  # the process dies here: the new table is written, its fingerprint is not

    monkeypatch.setattr(metadata, "mark_current", killed)
    with pytest.raises(KeyboardInterrupt):
        compute_or_reuse(path, new, True, lambda: pl.DataFrame({"seed": [1]}))
    monkeypatch.undo()
    assert pl.read_parquet(path)["seed"].to_list() == [1]
    assert not is_current(path, old) and not is_current(path, new)  # neither run's inputs vouch for it
    df, reused = compute_or_reuse(path, old, True, lambda: pl.DataFrame({"seed": [0]}))
    assert not reused and df["seed"].to_list() == [0] and is_current(path, old)
