"""Where the project lives: the checkout holding pyproject.toml (the working directory when run from elsewhere)."""

from pathlib import Path


def project_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def real_benchmark_dir(configured: str, name: str):
    """A real benchmark's folder (`processbench`, `prmbench`): as configured, else `../shared/data/<name>` beside the
    project."""
    from prm_core.lineage.storage import as_path

    return as_path(configured) if configured else project_root().parent / "shared" / "data" / name
