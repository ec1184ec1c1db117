"""A source folder of problem files: which entries are problem files (one shard per file, keyed by its stem) and which
are not read, with why. Only regular files inside the folder are read: a FIFO would hang a reader, and a link out of
the folder would carry its target's lines into the released quarantine."""

from __future__ import annotations

import polars as pl
from upath import UPath

from prm_core.domains.problems import PROBLEM_SUFFIXES, QUARANTINE_SCHEMA, ProblemFileError
from prm_core.lineage.storage import as_path


def _not_readable(p, folder) -> str | None:
    """Why the folder entry `p` is not read as a problem file, or None: only regular files, and symlinks only to files
    inside the folder (a link's target is never read otherwise, so nothing outside reaches the quarantine)."""
    import os
    import stat

    from prm_core.lineage.storage import is_local

    if not is_local(p):
        return None if p.is_file() else "not a file"
    def said(e: OSError) -> str:
        return e.strerror.lower() if e.strerror else str(e)

    path = os.fspath(p)
    if os.path.islink(path):
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as e:  # a loop, or a dangling link
            return f"a symbolic link that does not resolve ({said(e)})"
        inside = os.path.realpath(os.fspath(folder))
        if os.path.commonpath([target, inside]) != inside:
            return "a symbolic link to outside the source folder (not followed)"
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"unreadable ({said(e)})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((f"not a regular file ({name})" for test, name in kinds if test(mode)), "not a regular file")


def scan_problem_folder(folder) -> tuple[dict[str, UPath], list[tuple[str, str]]]:
    """(shard key (file stem) -> problem file, sorted by key; [(entry, why it is skipped)]) of a folder. Suffixes count
    in any case (`.JSONL` is `.jsonl`); compressed or unknown ones, and entries that are not regular files inside the
    folder, are skipped with their reason. Two files of one stem are an error."""
    folder = as_path(folder)
    if not folder.exists():
        raise ProblemFileError(f"problem folder {folder} does not exist")
    if not folder.is_dir():
        raise ProblemFileError(f"problem source {folder} is not a folder")
    found: dict = {}
    skipped: list[tuple[str, str]] = []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.suffix.lower() not in PROBLEM_SUFFIXES:
            skipped.append((p.name, f"not a {'/'.join(PROBLEM_SUFFIXES)} file: its rows are not read"))
            continue
        why = _not_readable(p, folder)
        if why:
            skipped.append((p.name, why))
            continue
        if p.stem in found:
            raise ProblemFileError(f"two problem files share the shard key {p.stem!r}: {found[p.stem]} and {p}")
        found[p.stem] = p
    return dict(sorted(found.items())), skipped


def problem_files(folder) -> dict[str, UPath]:
    """Shard key (file stem) -> problem file of a folder, sorted by key (`scan_problem_folder`); none is an error."""
    return with_problem_files(folder, *scan_problem_folder(folder))


def with_problem_files(folder, found: dict[str, UPath], skipped: list[tuple[str, str]]) -> dict[str, UPath]:
    """`found`, or the error of a folder without problem files, naming what was skipped and why."""
    if not found:
        why = "".join(f"; {name}: {reason}" for name, reason in skipped[:5])
        raise ProblemFileError(f"no .jsonl/.json/.parquet problem files in {as_path(folder)}{why}")
    return found


def skipped_files_frame(folder, skipped: list[tuple[str, str]]) -> pl.DataFrame:
    """The skipped entries of a source folder as quarantine rows: the file, why, and no line or content (a file that
    is not read has neither)."""
    rows = [{"file": str(as_path(folder) / name), "line": None, "reason": why, "raw": None} for name, why in skipped]
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)
