"""Release lineage: the materializations that wrote a data dir's files.

Every asset records the data dir it wrote and the md5 of each file (`assets.common.metadata.files_written`); a
release takes, per asset and partition, the latest materialization that wrote its data dir (the shared Dagster
instance also holds runs of other data dirs) and names those runs.
"""

from __future__ import annotations

from pathlib import Path


def _latest_writes(instance, key: str, data_dir: str) -> dict:
    """Per partition (None: unpartitioned), the record of the latest materialization of `key` that wrote `data_dir`."""
    import dagster as dg

    latest, cursor, more = {}, None, True
    while more:
        page = instance.fetch_materializations(dg.AssetKey(key), limit=1000, cursor=cursor, ascending=False)
        for record in page.records:
            wrote = record.asset_materialization.metadata.get("lineage/data_dir")
            if wrote is not None and wrote.value == data_dir:
                latest.setdefault(record.partition_key, record)
        cursor, more = page.cursor, page.has_more
    return latest


def asset_lineage(instance, asset_keys: list[str], data_dir: Path) -> tuple[dict, dict, dict, dict]:
    """From the latest materializations that wrote `data_dir` (per asset and partition): per asset its run id,
    code and data versions, partitions; the run configs; the generation settings; and which materialization wrote
    each file last ({path relative to the data dir: (md5, asset, run id)})."""
    assets, configs, generation, writes, missing = {}, {}, {}, [], []
    for key in asset_keys:
        latest = _latest_writes(instance, key, str(data_dir))
        if not latest:
            missing.append(key)
            continue
        records = sorted(latest.values(), key=lambda r: r.storage_id)
        for record in records:
            writes.append((record.storage_id, key, record))
            if record.run_id not in configs:
                run = instance.get_run_by_id(record.run_id)
                configs[record.run_id] = run.run_config if run else {}
        event = records[-1]
        tags = event.asset_materialization.tags or {}
        assets[key] = {
            "run_id": event.run_id,
            "code_version": tags.get("dagster/code_version"),
            "data_version": tags.get("dagster/data_version"),
            "timestamp": event.timestamp,
            "partitions": dict(sorted((p, r.run_id) for p, r in latest.items() if p is not None)),
        }
        if key in ("rollouts", "self_confidence", "mc_estimates", "policy_model"):
            generation[key] = configs[event.run_id].get("ops", {}).get(key, {}).get("config", {}) or "defaults"
    if missing:
        raise ValueError(f"never materialized in {data_dir}: {', '.join(missing)}; run `make run` first")
    writers = {}
    for _, key, record in sorted(writes, key=lambda w: w[0]):  # oldest first: a later write of a file replaces it
        files = record.asset_materialization.metadata["lineage/files"].value
        writers.update({path: (md5, key, record.run_id) for path, md5 in files.items()})
    return assets, configs, generation, writers


def lineage_problems(root: Path, data_dir: Path, files: list, writers: dict) -> list[str]:
    """What keeps released files from a release: a file that differs from what its latest recorded materialization
    wrote, or that none wrote."""
    changed, unrecorded = [], []
    for f in files:
        written = writers.get((root / f.path).relative_to(data_dir).as_posix())
        if written is None:
            unrecorded.append(f.path)
        elif written[0] != f.md5:
            changed.append(f"{f.path} (md5 {f.md5}; {written[1]} run {written[2]} wrote {written[0]})")
    problems = ["changed since their materialization: " + ", ".join(changed)] if changed else []
    if unrecorded:
        problems.append(f"written by no recorded materialization in {data_dir}: " + ", ".join(unrecorded))
    return problems
