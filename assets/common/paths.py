"""Where the project lives: the checkout holding pyproject.toml (the working directory when run from elsewhere)."""

from pathlib import Path


def project_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()
