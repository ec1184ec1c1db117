"""Progress bars for long loops, shown when `PRM_PROGRESS=1` (the `prm` command sets it) or on a terminal."""

from __future__ import annotations

import os
import sys


def progress_enabled() -> bool:
    flag = os.environ.get("PRM_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


def progress_bar(total: int | None, desc: str, unit: str = "it"):
    """A tqdm bar on stderr, disabled unless progress is enabled."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(), leave=False, dynamic_ncols=True)


def quiet_transformers() -> None:
    """Silence transformers' own load/save progress bars (ours say what is going on)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:
        pass
