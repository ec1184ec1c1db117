"""Progress bars for long loops, shown when `PRM_PROGRESS=1` (the `prm` command sets it) or on a terminal."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys

_SCOPE = contextvars.ContextVar("progress_scope", default="")


def progress_enabled() -> bool:
    flag = os.environ.get("PRM_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_scope(label: str):
    """Bars opened inside are labelled with what they work for (`rollouts/arith-0001`), not only what they do."""
    token = _SCOPE.set(label)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def progress_bar(total: int | None, desc: str, unit: str = "it"):
    """A tqdm bar on stderr, disabled unless progress is enabled; labelled with the `progress_scope` it is in."""
    from tqdm.auto import tqdm

    scope = _SCOPE.get()
    return tqdm(total=total, desc=f"{scope}: {desc}" if scope else desc, unit=unit, disable=not progress_enabled(),
                leave=False, dynamic_ncols=True)


def quiet_transformers() -> None:
    """Silence transformers' own load/save progress bars (ours say what is going on)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:
        pass
