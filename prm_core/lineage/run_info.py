"""`run_info.json`: what differs between two runs of the same data (timings, tokens/s, MLflow and Dagster run ids,
absolute paths), kept beside the files it describes so that every other released file is byte-reproducible."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path, PurePosixPath

from prm_core.lineage.storage import RUN_INFO, as_path, write_json

_LOCK = threading.Lock()


def is_run_record(path: str | os.PathLike) -> bool:
    """Whether the file at `path` records the run rather than its data: a `run_info.json`, or the summary
    (`reports/summary.json`: it keeps the timing keys issues name). A release records their contents in its
    manifest, not their hashes among its files."""
    parts = PurePosixPath(Path(path).as_posix()).parts
    return parts[-1:] == (RUN_INFO,) or parts[-2:] == ("reports", "summary.json")


def run_info_path(folder: str | os.PathLike):
    return as_path(folder) / RUN_INFO


def read_run_info(folder: str | os.PathLike) -> dict:
    path = run_info_path(folder)
    return json.loads(path.read_text()) if path.exists() else {}


def read_with_run_info(folder: str | os.PathLike, name: str) -> dict:
    """What an asset recorded of a model in `folder/name` (reproducible facts) with its run info (timings, ids)."""
    return {**json.loads((as_path(folder) / name).read_text()), **read_run_info(folder)}


def update_run_info(folder: str | os.PathLike, values: dict) -> dict:
    """Merge `values` into `folder/run_info.json` and write it atomically; returns the merged record."""
    with _LOCK:
        merged = {**read_run_info(folder), **values}
        write_json(merged, run_info_path(folder))
    return merged
