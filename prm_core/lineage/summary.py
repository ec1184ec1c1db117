"""`reports/summary.json`: flat dotted keys (a contract: names and meanings are kept), merged by every stage.

It holds the run's timings too (`*.seconds`, `rollouts.tokens_per_s`, `run.id`: keys that issues name), so it is the
one file of `reports/` that differs between two runs of the same data; a release records it in its manifest
(`summary`) instead of listing it among the byte-reproducible files."""

from __future__ import annotations

import json
import os
import threading

from prm_core.lineage.storage import as_path, write_json

_LOCK = threading.Lock()


def summary_dir(data_dir: str | os.PathLike):
    return as_path(data_dir) / "reports"


def summary_path(data_dir: str | os.PathLike):
    return summary_dir(data_dir) / "summary.json"


def _read_json(path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def read_summary(data_dir: str | os.PathLike) -> dict:
    return _read_json(summary_path(data_dir))


def update_summary(data_dir: str | os.PathLike, values: dict, drop_prefix: str = "") -> dict:
    """Merge `values` into the summary (after dropping the keys under `drop_prefix`, when given: a table replaced
    whole) and write it atomically; returns the merged summary."""
    with _LOCK:
        kept = {k: v for k, v in _read_json(summary_path(data_dir)).items() if not (drop_prefix and k.startswith(drop_prefix))}
        merged = {**kept, **values}
        write_json(merged, summary_path(data_dir))
    return merged


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_summary(summary: dict) -> str:
    """A plain two-column table of the summary, keys sorted."""
    if not summary:
        return "(no summary yet: run `prm run`)"
    width = max(len(k) for k in summary)
    lines = [f"{'key'.ljust(width)}  value", f"{'-' * width}  -----"]
    lines += [f"{k.ljust(width)}  {format_value(summary[k])}" for k in sorted(summary)]
    return "\n".join(lines)


STAGE_PREFIX = "run.stage_seconds."  # one key per asset of the run, plus `other` (launches, code servers, start-up)


# renamed assets' old stage keys, written beside the new ones for one release (summary keys are a contract): old -> new
STAGE_ALIASES = {"active_prm": "actprm_model", "active_selection": "actprm_selection"}


def stage_keys(seconds: dict[str, float]) -> dict[str, float]:
    """The summary keys of a run's stage table: `run.stage_seconds.<asset>` for each stage, in run order, then the
    old key of each renamed asset (`STAGE_ALIASES`) with the same value."""
    keys = {f"{STAGE_PREFIX}{name}": round(s, 1) for name, s in seconds.items()}
    return keys | {f"{STAGE_PREFIX}{old}": keys[f"{STAGE_PREFIX}{new}"] for old, new in STAGE_ALIASES.items()
                   if f"{STAGE_PREFIX}{new}" in keys}


def stage_rows(summary: dict) -> list[tuple[str, float]]:
    """(stage, seconds) of the summary's stage table in run order, each stage once (aliases left out)."""
    return [(k[len(STAGE_PREFIX):], float(v)) for k, v in summary.items()
            if k.startswith(STAGE_PREFIX) and k[len(STAGE_PREFIX):] not in STAGE_ALIASES]


def format_stage_table(summary: dict) -> str:
    """Seconds per asset and its share of the run, in the order the stages ran ("" when the summary has none)."""
    rows = stage_rows(summary)
    if not rows:
        return ""
    total = sum(s for _, s in rows) or 1.0
    width = max(len("stage"), *(len(n) for n, _ in rows))
    lines = [f"{'stage'.ljust(width)}  {'seconds':>8}  share", f"{'-' * width}  {'-' * 8}  -----"]
    lines += [f"{n.ljust(width)}  {s:8.1f}  {s / total:5.1%}" for n, s in rows]
    lines += [f"{'total'.ljust(width)}  {total:8.1f}  100.0%"]
    return "\n".join(lines)


# the numbers a run is quoted by (`prm run` ends with them; bench/run_profile.py prints them)
HEADLINE = ("policy.accuracy", "rollouts.accuracy", "mc.token_ratio_all_in", "labels.scan.first_error_acc",
            "labels.vanilla.first_error_acc", "prm.vanilla.f1", "prm.scan.f1", "prm.oracle.f1",
            "actprm.label_fraction", "actprm.f1", "bon.majority", "bon.prm_min.vanilla", "bon.prm_min.scan")


def format_headline(summary: dict) -> str:
    """The headline keys the summary has, one per line ("" when it has none)."""
    rows = [(k, format_value(summary[k])) for k in HEADLINE if k in summary]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v:>10}" for k, v in rows)


# a key each stage of the default run writes, on any domain (`EXACT_ONLY`: the arith testbed's), so that a summary
# without it lacks that stage's results
STAGE_MARKS = {"rollouts": r"rollouts\.accuracy", "mc_estimates": r"mc\..+",
               "label_audit": r"labels\.[^.]+\.first_error_acc", "prm_model": r"prm\.[^.]+\.precision",
               "implicit_prm": r"implicit\.[^.]+\.precision", "actprm_model": r"actprm\.f1",
               "benchmark_scores": r"benchmark\.prms|bon\.majority"}
EXACT_ONLY = ("label_audit", "actprm_model")  # need the exact step checker (`pool.exact_labels`)


def missing_stages(summary: dict) -> list[str]:
    """The stages of the default run whose results the summary does not have yet (a partial or failed run)."""
    import re

    expected = [s for s in STAGE_MARKS if summary.get("pool.exact_labels", True) or s not in EXACT_ONLY]
    return [s for s in expected if not any(re.fullmatch(STAGE_MARKS[s], k) for k in summary)]


def is_timing_key(key: str) -> bool:
    """A summary key that differs between two runs of the same data by design: a timing, a rate or the run's id."""
    last = key.rsplit(".", 1)[-1]
    return key == "run.id" or key.startswith(STAGE_PREFIX) or last.endswith(("seconds", "per_s"))


def summary_changes(released: dict, now: dict) -> list[str]:
    """Each non-timing key whose value differs between a released summary and the one on disk, named with both."""
    return [f"summary: {key} is {now.get(key, '(absent)')!r}, released as {released.get(key, '(absent)')!r}"
            for key in sorted(set(released) | set(now)) if not is_timing_key(key) and released.get(key) != now.get(key)]

