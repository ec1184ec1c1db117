"""Release manifests: one JSON tying git, Dagster, DVC and MLflow together, and its verification.

Every released file is listed with its md5 (equal to DVC 3's hash of the file) and size; `verify` recomputes
every hash and reports each missing, changed or added file by name, plus any link (git commit, tag, MLflow run,
model version) that no longer resolves. Run records (`run_info.json` files and the summary) hold what differs between
two runs of the same data (timings, run ids, paths): the manifest records their contents (`run_info`), not their
hashes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prm_core.lineage.run_info import is_run_record
from prm_core.lineage.storage import md5_file

MANIFEST_VERSION = 1


@dataclass
class FileEntry:
    path: str  # relative to the project root
    md5: str
    size: int


@dataclass
class Manifest:
    name: str
    created: str
    git_sha: str
    git_tag: str
    data_dir: str
    files: list[FileEntry]
    assets: dict = field(default_factory=dict)  # key -> run id, code/data versions, partitions, checks
    dvc: dict = field(default_factory=dict)  # remote, dvc.lock md5, stage outs
    mlflow: dict = field(default_factory=dict)  # tracking uri, run id, registered model name/version
    config: dict = field(default_factory=dict)  # run config of the runs that made the assets
    generation: dict = field(default_factory=dict)  # sampling settings of every generating asset
    packages: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    released: list[str] = field(default_factory=list)  # the released files and folders, relative to the root
    run_info: dict = field(default_factory=dict)  # path of each run record (relative to the root) -> its contents
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """A manifest from its JSON; ValueError saying what is wrong when the text is not one."""
        try:
            raw = json.loads(text)
            raw["files"] = [FileEntry(**f) for f in raw["files"]]
            return cls(**raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except (TypeError, KeyError) as e:
            raise ValueError(f"not a release manifest ({type(e).__name__}: {e})") from None


def _files_under(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        files += [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    return sorted(set(files))


def file_entries(root: Path, paths: list[Path]) -> list[FileEntry]:
    """Every file under `paths` (files or folders) but the run records, relative to `root`, sorted, with md5 and
    size."""
    return [FileEntry(f.relative_to(root).as_posix(), md5_file(f), f.stat().st_size)
            for f in _files_under(paths) if not is_run_record(f)]


def run_info_entries(root: Path, paths: list[Path]) -> dict[str, dict]:
    """The contents of every run record under `paths`, by path relative to `root`."""
    out = {}
    for f in _files_under(paths):
        if is_run_record(f):
            try:
                out[f.relative_to(root).as_posix()] = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{f}: not valid JSON ({e})") from e
    return out


def added_files(root: Path, paths: list[Path], files: list[FileEntry]) -> list[str]:
    """A message per file under `paths` that the manifest does not list (run records are not listed)."""
    listed = {f.path for f in files}
    return [f"added: {rel}" for rel in (f.relative_to(root).as_posix() for f in _files_under(paths) if not is_run_record(f))
            if rel not in listed]


def verify_files(root: Path, files: list[FileEntry]) -> list[str]:
    """A message per missing or changed file (empty when every hash matches)."""
    problems = []
    for f in files:
        path = root / f.path
        if not path.exists():
            problems.append(f"missing: {f.path}")
        elif path.stat().st_size != f.size or md5_file(path) != f.md5:
            problems.append(f"changed: {f.path} (md5 {md5_file(path)} != {f.md5})")
    return problems


def package_versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out
