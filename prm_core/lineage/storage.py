"""Atomic, fsspec-backed storage of Parquet tables and model directories.

Paths are `UPath`s, so the same code writes to a local folder or to object storage. A write goes to a temporary
name next to the target and is renamed into place, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
from upath import UPath


def as_path(path: str | os.PathLike) -> UPath:
    return path if isinstance(path, UPath) else UPath(path)


def is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def absolute(path: str | os.PathLike) -> UPath:
    """A local path resolved (it means the same from any working dir or node), a URL as it is."""
    path = as_path(path)
    return UPath(Path(path.path).resolve()) if is_local(path) else path


def model_path(root: str | os.PathLike, name: str) -> UPath:
    """Where model `name` of the data dir `root` lives, as its pointer `models/<name>.json` records it (a relative
    path: inside `root`, so that a copied data dir reads its own models), else `models/<name>`."""
    root = as_path(root)
    pointer = root / "models" / f"{name}.json"
    if pointer.exists():
        recorded = UPath(json.loads(pointer.read_text())["path"])
        return recorded if recorded.is_absolute() else root / recorded.path
    return root / "models" / name


def write_parquet(df: pl.DataFrame, path: str | os.PathLike) -> UPath:
    """Write `df` to `path` atomically (temp file + rename)."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    if is_local(path):
        df.write_parquet(str(tmp))
        os.replace(str(tmp), str(path))
    else:  # object stores: a put is atomic per object
        with path.open("wb") as f:
            df.write_parquet(f)
    return path


class TableReadError(ValueError):
    """A table of the data dir that cannot be read: names it, and what to do."""


def read_parquet(path: str | os.PathLike) -> pl.DataFrame:
    """The table at `path`; a damaged or unreadable one is a `TableReadError` naming the file."""
    path = as_path(path)
    try:
        if is_local(path):
            return pl.read_parquet(str(path), glob=False)  # the name as it is: `x[1],*.parquet` is a file, not a pattern
        with path.open("rb") as f:
            return pl.read_parquet(f)
    except FileNotFoundError:
        raise
    except (pl.exceptions.PolarsError, OSError) as e:
        raise TableReadError(f"{path}: not a readable Parquet table ({type(e).__name__}: {str(e).splitlines()[0][:300]}); "
                             "delete it and rerun to compute it again") from e


def write_text(text: str, path: str | os.PathLike) -> UPath:
    """Write `text` (UTF-8) to `path` atomically (temp file + rename)."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_local(path):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(str(tmp), str(path))
    else:  # object stores: a put is atomic per object
        path.write_text(text, encoding="utf-8")
    return path


def write_json(obj, path: str | os.PathLike) -> UPath:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str), path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a local temp directory; on success it replaces `path` (uploaded when `path` is remote)."""
    path = as_path(path)
    if is_local(path):
        target = Path(str(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            yield tmp
            old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
            if path.exists():  # no rename of a folder in object stores: clear it, or an old file would stay beside the new
                path.fs.rm(path.path, recursive=True)
            copy_files(Path(tmp), path)


def copy_files(src, dest, keep: Callable[[str], bool] = lambda name: True) -> None:
    """Every file under `src` (whose name `keep` accepts) to the same relative path under `dest`; either may be remote."""
    for f in src.rglob("*"):
        if f.is_file() and keep(f.name):
            out = dest / f.relative_to(src).as_posix()
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.read_bytes())


def local_copy(path: str | os.PathLike) -> Path:
    """A local directory holding the model at `path` (downloaded to a cache when remote)."""
    path = as_path(path)
    if is_local(path):
        return Path(str(path))
    # keyed by the address and each file's fsspec checksum (an ETag on S3): a model rewritten in place is copied anew
    files = sorted((f.relative_to(path).as_posix(), str(f.fs.checksum(f.path))) for f in path.rglob("*") if f.is_file())
    if not files:
        raise FileNotFoundError(f"no model files at {path}")
    cache = Path(tempfile.gettempdir()) / "prm_models" / hashlib.md5(json.dumps([str(path), files]).encode()).hexdigest()
    if not cache.exists():
        with atomic_dir(cache) as tmp:
            copy_files(path, tmp)
    return cache


def md5_file(path: str | os.PathLike) -> str:
    """The file's md5 (equal to DVC 3's hash of the file)."""
    h = hashlib.md5()
    with as_path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


RUN_INFO = "run_info.json"  # timings, run ids and paths of the run that wrote a folder (lineage.run_info)


def md5_dir(path: str | os.PathLike) -> str:
    """A content hash of a directory: md5 over sorted (relative path, file md5) pairs, its run info left out."""
    path = as_path(path)
    h = hashlib.md5()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != RUN_INFO):
        h.update(f"{f.relative_to(path).as_posix()}\t{md5_file(f)}\n".encode())
    return h.hexdigest()


def frame_md5(df: pl.DataFrame) -> str:
    """A content hash of a frame (row order matters), stable across writes."""
    return hashlib.md5(df.hash_rows(seed=0).to_numpy().tobytes() + ",".join(df.columns).encode()).hexdigest()
