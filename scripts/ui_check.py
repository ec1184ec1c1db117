"""Check in a real browser what the Dagster UI shows for a data dir (issue 16): runs under their jobs, per-partition
metadata, non-zero costs, only this data dir's shards, the asset catalog and plots.

    .venv/bin/python scripts/ui_check.py [--data-dir data] [--json] [--screenshots DIR] [--browser PATH]

It starts `prm ui` (dagster dev) on a free port against a copy of the data dir's DAGSTER_HOME (`--in-place` uses it
as is), drives headless Chromium through the UI's pages, prints PASS/FAIL per check with what the page showed, stops
the server (also on failure) and exits 1 on any FAIL. GraphQL only says what to expect (run ids, plot names); each
check asserts on the text of the rendered page. Needs Playwright for Python (`make ui-check` installs it) and a
Chromium: `--browser PATH`, $PRM_UI_BROWSER, Playwright's own (`python -m playwright install chromium`), or the
system's (`apt-get install chromium`), in that order.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ui_server import JOBS, ROOT, Browser, find_browser, free_port, graphql, start_server, stop_server, wait_loaded

sys.path.insert(0, str(ROOT))  # this checkout's code, not another one's editable install
from orchestration.cli import set_env_defaults  # noqa: E402

PLOT_ASSETS = ("label_audit", "step_truth")
STAMP = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2} [AP]M$")  # a metadata row's timestamp column
VIEWPORT = {"width": 1600, "height": 2400}  # tall: the catalog lists only the rows in view
METADATA = r"Key\s+Timestamp\s+Value"  # an asset page's metadata table has loaded


@dataclass
class Check:
    id: str
    name: str
    ok: bool
    saw: str
    page: str
    screenshot: str | None = None


def value_after(text: str, key: str) -> str | None:
    """A metadata entry's value as the page lays it out: the key's line, then (a timestamp and) the value."""
    lines = [s.strip() for s in text.splitlines()]
    for i, line in enumerate(lines):
        if line == key:
            rest = [s for s in lines[i + 1:] if s and not STAMP.match(s)]
            return rest[0] if rest else None
    return None


def number(value: str | None) -> float | None:
    try:
        return float(value.replace(",", "")) if value is not None else None
    except ValueError:
        return None


def check_job_runs(b: Browser, loc: str, job: str) -> Check:
    runs = graphql(b.base, "query($j: String!) { runsOrError(filter: {pipelineName: $j}) { ... on Runs { results "
                           "{ runId } } } }", j=job)["runsOrError"]["results"]
    ids = [r["runId"][:8] for r in runs]
    path = f"/locations/{loc}/jobs/{job}/runs"
    text, shot = b.open(path, "No runs found|" + "|".join(ids or ["^$"]), f"a_runs_{job}")
    shown = [i for i in ids if i in text]
    saw = (f"{len(shown)} of the instance's {len(ids)} {job} runs listed ({', '.join(shown[:5])})" if shown else
           f"{'No runs found' if 'No runs found' in text else 'no run rows'}; the instance has {len(ids)} {job} runs")
    return Check("a", f"{job} Runs tab lists its runs", bool(shown), saw, path, shot)


def shard_facts(data_dir: Path, asset: str, shard: str) -> dict:
    import polars as pl

    frame = pl.read_parquet(data_dir / asset / f"{shard}.parquet")
    tokens = int(frame["num_tokens"].sum()) if "num_tokens" in frame.columns else None
    return {"rows": frame.height, "tokens": tokens}


def check_partition_metadata(b: Browser, data_dir: Path, asset: str, keys: list[str]) -> Check:
    panels, problems, saw, shots = {}, [], [], []
    for k, other in ((keys[0], keys[1]), (keys[1], keys[0])):
        text, shot = b.open(f"/assets/{asset}?view=partitions&partition={k}", r"Latest materialization[\s\S]*Metadata",
                            f"b_{asset}_{k}")
        shots.append(shot)
        panel = text[text.find("Latest materialization"):] if "Latest materialization" in text else ""
        panels[k], facts = panel, shard_facts(data_dir, asset, k)
        rows, cost = (number(value_after(panel, key)) for key in ("dagster/row_count", "cost/generated_tokens"))
        saw.append(f"{k}: row_count {value_after(panel, 'dagster/row_count')} (file {facts['rows']}), "
                   f"cost/generated_tokens {value_after(panel, 'cost/generated_tokens')} (file {facts['tokens']}), "
                   f"mentions {other}: {other in panel}")
        problems += [f"{k}: no metadata panel"] * (not panel)
        problems += [f"{k}: row count {rows} != {facts['rows']}"] * (rows != facts["rows"])
        problems += [f"{k}: shows {other}'s rows/keys"] * (other in panel)
        if facts["tokens"] is not None:
            problems += [f"{k}: cost/generated_tokens {cost} != {facts['tokens']}"] * (cost != facts["tokens"])
    same = panels[keys[0]].replace(keys[0], keys[1]) == panels[keys[1]]
    problems += ["both partitions show the same metadata"] * same
    return Check("b", f"{asset} metadata differs per partition and matches its shard", not problems,
                 "; ".join(saw + problems), f"/assets/{asset}?view=partitions&partition={'|'.join(keys)}",
                 ", ".join(filter(None, shots)) or None)


def check_costs(b: Browser, asset: str) -> Check:
    path = f"/assets/{asset}"
    text, shot = b.open(path, METADATA, f"c_{asset}_latest")
    keys = ("cost/generated_tokens", "cost/rollouts", "cost/seconds", "tokens_per_s")
    values = {k: value_after(text, k) for k in (*keys, "reused")}
    latest = value_after(text, "Latest materialization")
    ok = all((number(values[k]) or 0) > 0 for k in keys)
    saw = f"latest materialization {latest}: " + ", ".join(f"{k} {v}" for k, v in values.items())
    return Check("c", f"{asset}'s latest materialization has non-zero costs", ok, saw, path, shot)


def check_partitions(b: Browser, data_dir: Path, asset: str) -> Check:
    files = sorted(p.name.removesuffix(".parquet") for p in (data_dir / asset).glob("*.parquet"))
    path = f"/assets/{asset}?view=partitions"
    text, shot = b.open(path, r"Missing \(\d+\)", f"d_{asset}_partitions")
    counts = {k: int(n) for k, n in re.findall(r"(Failed|Materialized|Materializing|Missing) \((\d+)\)", text)}
    shown = sum(counts.values())
    missing = [f for f in files if f not in text]
    keys = graphql(b.base, "query($k: [String!]!) { assetNodeOrError(assetKey: {path: $k}) { ... on AssetNode "
                           "{ partitionKeys } } }", k=[asset])["assetNodeOrError"]["partitionKeys"]
    others = [k for k in keys if k not in files and k in text]
    text_o, _ = b.open(f"/assets/{asset}", METADATA, f"d_{asset}_latest")
    shown_dir = value_after(text_o, "lineage/data_dir")
    same_dir = shown_dir is not None and os.path.realpath(shown_dir) == os.path.realpath(data_dir)
    ok = shown == len(files) and not missing and not others and same_dir
    saw = (f"{shown} partitions shown {counts}, {len(files)} shard files {files}; files not shown {missing}; "
           f"shown without a file {others}; "
           f"latest materialization's lineage/data_dir {shown_dir}")
    return Check("d", f"{asset} shows only this data dir's shards", ok, saw, path, shot)


def check_catalog(b: Browser, loc: str) -> list[Check]:
    nodes = graphql(b.base, "{ assetNodes { assetKey { path } groupName jobNames } }")["assetNodes"]
    names = sorted("/".join(n["assetKey"]["path"]) for n in nodes)
    text, shot = b.open("/assets", [re.escape(n) for n in names], "e_catalog")
    missing = [n for n in names if n not in text]
    out = [Check("e", "the asset catalog lists every asset", not missing and bool(names),
                 f"{len(names) - len(missing)} of {len(names)} assets listed; missing {missing}", "/assets", shot)]
    groups = Counter(n["groupName"] for n in nodes if "default_pipeline" in n["jobNames"])
    path = f"/locations/{loc}/jobs/default_pipeline"
    b.page.set_viewport_size({"width": 3200, "height": 2400})  # the graph draws only the nodes in view
    text, shot = b.open(path, [rf"(?m)^{re.escape(g)}$" for g in groups], "e_job_graph")
    b.page.set_viewport_size(VIEWPORT)
    # a group's node shows its name over either "N assets" or its assets' status counts, by zoom and state
    shown = sorted(g for g in groups if re.search(rf"(?m)^{re.escape(g)}$", text))
    out.append(Check("e", "default_pipeline's asset graph shows its groups of assets", bool(groups) and shown == sorted(groups),
                     f"groups in the graph {shown}, the job's assets by group {dict(groups)}", path, shot))
    return out + [check_plots(b, a) for a in PLOT_ASSETS]


def check_plots(b: Browser, asset: str) -> Check:
    """Each image in the asset's latest markdown metadata renders (opened from its row, as a user would)."""
    q = ("query($k: [String!]!) { assetOrError(assetKey: {path: $k}) { ... on Asset { assetMaterializations(limit: 1)"
         " { metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }")
    mats = graphql(b.base, q, k=[asset])["assetOrError"].get("assetMaterializations") or [{"metadataEntries": []}]
    plots = [e["label"] for e in mats[0]["metadataEntries"] if "data:image" in (e.get("mdStr") or "")]
    path = f"/assets/{asset}"
    b.open(path, [re.escape(p) for p in plots] + [METADATA], f"e_{asset}")
    sizes, shot = {}, None
    for label in plots:
        row = b.page.locator("tr").filter(has=b.page.get_by_text(label, exact=True)).first
        opener = row.get_by_text("[Show Markdown]")
        if opener.count():
            opener.first.click()
            scope = b.page.locator("[role=dialog]").last
        else:
            scope = row
        img = scope.locator("img").first
        try:
            img.wait_for(timeout=b.timeout * 1000)
            b.page.wait_for_function("e => e.complete", arg=img.element_handle(), timeout=b.timeout * 1000)
            sizes[label] = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
            shot = b.shot(f"e_{asset}_{label}", scope) or shot
        except Exception as e:  # noqa: BLE001 - what the page showed instead is the finding
            sizes[label] = f"no image ({type(e).__name__})"
        if opener.count():
            b.page.keyboard.press("Escape")
    ok = bool(plots) and all(isinstance(s, list) and min(s) > 0 for s in sizes.values())
    saw = ", ".join(f"{k} {'x'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sizes.items())
    return Check("e", f"{asset}'s plots render", ok, saw or "no plot metadata", path, shot)


def run_checks(b: Browser, loc: str, data_dir: Path, asset: str, keys: list[str]) -> list[Check]:
    checks = [check_job_runs(b, loc, job) for job in JOBS]
    checks.append(check_partition_metadata(b, data_dir, asset, keys))
    checks.append(check_costs(b, asset))
    checks.append(check_partitions(b, data_dir, "problem_pool"))
    return checks + check_catalog(b, loc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=None, help="the data dir of the run to check ($PRM_DATA_DIR or ./data)")
    ap.add_argument("--dagster-home", default=None, help="its Dagster instance (default: as `prm ui` picks it)")
    ap.add_argument("--in-place", action="store_true", help="serve the instance itself, not a temporary copy")
    ap.add_argument("--asset", default="rollouts", help="the shard asset whose metadata is checked (rollouts)")
    ap.add_argument("--partitions", default=None, help="k1,k2: the shards compared (its first two files)")
    ap.add_argument("--browser", default=None, help="a Chromium executable (default $PRM_UI_BROWSER, then found)")
    ap.add_argument("--screenshots", default=None, help="save a PNG of each page checked into this folder")
    ap.add_argument("--json", action="store_true", help="print a JSON report instead of PASS/FAIL lines")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a page may take to show what is checked (30)")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="seconds `dagster dev` may take to load (300)")
    ap.add_argument("--which-browser", action="store_true", help="print the Chromium that would be used and exit")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    browser = find_browser(args.browser)
    if args.which_browser:
        print(browser)
        return 0
    if args.dagster_home:
        os.environ["DAGSTER_HOME"] = args.dagster_home
    set_env_defaults(args.data_dir)
    data_dir, home = Path(os.environ["PRM_DATA_DIR"]).resolve(), os.environ["DAGSTER_HOME"]
    files = sorted(p.name.removesuffix(".parquet") for p in (data_dir / args.asset).glob("*.parquet"))
    keys = args.partitions.split(",") if args.partitions else files[:2]
    if len(keys) != 2:
        raise SystemExit(f"ui_check: need two shards of {args.asset} in {data_dir} (found {files})")
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the server
    t0, port = time.monotonic(), free_port()
    with tempfile.TemporaryDirectory(prefix="ui_check_") as tmp:
        served = home if args.in_place else shutil.copytree(home, Path(tmp) / "dagster_home")
        log, base = Path(tmp) / "dagster_dev.log", f"http://127.0.0.1:{port}"
        proc = start_server(port, str(data_dir), str(served), log)
        try:
            loc = wait_loaded(base, proc, log, args.start_timeout)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                chromium = p.chromium.launch(executable_path=browser, headless=True)
                page = chromium.new_page(viewport=VIEWPORT)
                checks = run_checks(Browser(page, base, shots, args.timeout), loc, data_dir, args.asset, keys)
                chromium.close()
        except RuntimeError as e:  # the server did not come up, or answered with an error
            print(f"ui_check: {e}", file=sys.stderr)
            return 1
        finally:
            stop_server(proc)
    ok, seconds = all(c.ok for c in checks), round(time.monotonic() - t0, 1)
    if args.json:
        print(json.dumps({"ok": ok, "seconds": seconds, "data_dir": str(data_dir), "dagster_home": home,
                          "location": loc, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"{'PASS' if c.ok else 'FAIL'} ({c.id}) {c.name}: {c.saw}  [{c.page}]")
        print(f"ui_check: {sum(c.ok for c in checks)}/{len(checks)} passed in {seconds} s ({data_dir})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
