"""Metadata helpers shared by the asset modules: table previews, costs, what was written, plots, shard fingerprints."""


import base64
import io
import json
import os
import time

import dagster as dg
import polars as pl

from prm_core.lineage.storage import as_path, md5_file, read_parquet
from prm_core.runtime.progress import progress_scope


def preview(df: pl.DataFrame, n: int = 5, max_chars: int = 60, max_columns: int | None = 8) -> dg.MetadataValue:
    """The first rows of a frame as a Dagster table narrow enough for the asset page, which shows a table whole and
    never scrolls it: at most `max_columns` columns, then one headed "+k more" whose schema entry names the rest
    (the UI's "Show schema"); long text and lists cut at `max_chars`. The files hold every column."""
    shown = df.columns if max_columns is None else df.columns[:max_columns]
    head = df.head(n).select(shown)
    columns, records = [], []
    for name, dtype in head.schema.items():
        kind = "int" if dtype.is_integer() else "float" if dtype.is_float() else "bool" if dtype == pl.Boolean else "string"
        columns.append(dg.TableColumn(name, kind))
    for row in head.iter_rows(named=True):
        rec = {}
        for (name, dtype), col in zip(head.schema.items(), columns):
            value = row[name]
            if col.type == "float" and value is not None:
                value = round(value, 4)
            if col.type == "string" and value is not None:
                value = str(value)
                value = value if len(value) <= max_chars else value[: max_chars - 1] + "…"
            rec[name] = value
        records.append(dg.TableRecord(rec))
    hidden = [c for c in df.columns if c not in shown]
    if hidden:
        columns.append(dg.TableColumn(f"+{len(hidden)} more", "string", description="not shown: " + ", ".join(hidden)))
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def table(df: pl.DataFrame) -> dg.MetadataValue:
    """A whole (small) frame as a Dagster table: every column."""
    return preview(df, n=df.height, max_chars=200, max_columns=None)


def cost(seconds: float | None, generated_tokens: int = 0, rollouts: int = 0) -> dict:
    """The cost keys every asset records (no `cost/seconds` when they are unknown: a shard an older version kept)."""
    out = {} if seconds is None else {"cost/seconds": dg.MetadataValue.float(round(seconds, 2))}
    return {**out, "cost/generated_tokens": dg.MetadataValue.int(int(generated_tokens)),
            "cost/rollouts": dg.MetadataValue.int(int(rollouts))}


def record_partition(context, storage, key: str, rows: pl.DataFrame | None, files, seconds: float | None,
                     generated_tokens: int = 0, rollouts: int = 0, **extra) -> None:
    """Partition `key`'s own metadata on its own materialization event (one run covers a range of partitions):
    its rows and preview (a table; None for a model), the cost of its work (kept work: the cost it had when
    computed) and the files written for it. The run's `MaterializeResult` keys go to every partition: keep them
    to facts of the whole run, named `run/...` (or `all_shards/...` for what covers every shard of the data dir)."""
    table_md = {} if rows is None else {"dagster/row_count": rows.height, "preview": preview(rows)}
    context.add_asset_metadata({
        **table_md, **cost(seconds, generated_tokens=generated_tokens, rollouts=rollouts),
        **files_written(storage, files), **extra}, partition_key=key)


def files_written(storage, paths) -> dict:
    """The keys every asset records of what it wrote: its data dir and each file's md5 (relative to the data dir),
    so that a release names the runs that wrote its files and refuses a file changed since. A folder is each file
    in it; a table comes with its `compute_or_reuse` fingerprint; a path outside the data dir (a pretrained model)
    or not there (an optional report) has nothing to record."""
    files = {}
    for path in map(as_path, paths):
        found = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path, fingerprint_path(path)]
        for f in found:
            relative = storage.relative(f)
            if relative is not None and f.exists():
                files[relative] = md5_file(f)
    return {"lineage/data_dir": dg.MetadataValue.text(str(storage.data_dir())),
            "lineage/files": dg.MetadataValue.json(dict(sorted(files.items())))}


def plot_md(fig) -> dg.MetadataValue:
    """A matplotlib figure as a base64 PNG in markdown. Dagster 1.13 has no image type (a url or path shows as text);
    the UI renders markdown inline only under 1000 characters, so a plot opens under "[Show Markdown]"."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def read_shards(paths) -> pl.DataFrame:
    """All shard tables of an asset, concatenated (empty frame when there are none)."""
    frames = [read_parquet(p) for p in paths]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def fingerprint_path(table_path):
    return as_path(str(table_path) + ".fingerprint.json")


def is_current(table_path, fingerprint: dict) -> bool:
    """Whether `table_path` was written from exactly these inputs (so a re-run can keep it)."""
    fp = fingerprint_path(table_path)
    return as_path(table_path).exists() and fp.exists() and json.loads(fp.read_text()) == fingerprint


def mark_current(table_path, fingerprint: dict) -> None:
    from prm_core.lineage.storage import write_json

    write_json(fingerprint, fingerprint_path(table_path))


def compute_or_reuse(table_path, fingerprint: dict, reuse: bool, compute) -> tuple[pl.DataFrame, bool]:
    """The table at `table_path` if it was made from exactly these inputs, else `compute()` written atomically, its
    seconds recorded (`computed_seconds`) so that a rerun keeping it reports the cost it had.

    This is what makes long stages resumable: each unit (shard, chunk) is kept as soon as it is done."""
    from prm_core.lineage.run_info import update_run_info
    from prm_core.lineage.storage import write_parquet

    if reuse and is_current(table_path, fingerprint):
        return read_parquet(table_path), True
    # the old fingerprint goes first: a run killed between the table and its fingerprint leaves a table that no
    # fingerprint vouches for (computed again), never a new table under the old inputs' fingerprint
    fingerprint_path(table_path).unlink(missing_ok=True)
    start = time.perf_counter()
    with progress_scope(_unit_label(table_path)):
        df = compute()
    seconds = time.perf_counter() - start
    write_parquet(df, table_path)
    # timings differ between runs: the folder's run record, keyed by table, never the fingerprint or the table
    update_run_info(as_path(table_path).parent, {as_path(table_path).name: {"seconds": round(seconds, 3)}})
    mark_current(table_path, fingerprint)
    return df, False


def _unit_label(table_path) -> str:
    """A unit of work named by its table, relative to the data dir where it lies there (`rollouts/arith-0001`)."""
    path = as_path(table_path)
    base = os.environ.get("PRM_DATA_DIR")
    try:
        return str(path.relative_to(base).with_suffix("")) if base else f"{path.parent.name}/{path.stem}"
    except ValueError:
        return f"{path.parent.name}/{path.stem}"


def computed_seconds(table_path) -> float | None:
    """The seconds `compute_or_reuse` took to compute the table at `table_path` (None: not recorded)."""
    from prm_core.lineage.run_info import read_run_info

    return read_run_info(as_path(table_path).parent).get(as_path(table_path).name, {}).get("seconds")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def mc_seconds(storage, keys: list[str]) -> dict[str, float]:
    """Seconds per MC method over every shard's chunks (`mc_estimates`): timings live in mc_costs/run_info.json, not in
    the tables."""
    from prm_core.lineage.run_info import read_run_info

    info, out = read_run_info(storage.root / "mc_costs"), {}
    for path in storage.shard_tables("mc_costs", keys):
        for r in info.get(path.stem, []):
            out[r["method"]] = out.get(r["method"], 0.0) + r["seconds"]
    return out
