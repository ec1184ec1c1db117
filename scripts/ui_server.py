"""Serving and browsing for `ui_check.py`: `prm ui` (dagster dev) on a free port, its GraphQL, a headless page."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("default_pipeline", "implicit_pipeline", "prm_pipeline")
INSTALL = ("no Chromium found: set --browser/$PRM_UI_BROWSER, or `.venv/bin/python -m playwright install chromium`"
           " (Playwright's CDN), or `apt-get install chromium` (Debian/Ubuntu)")


def find_browser(explicit: str | None) -> str:
    """The Chromium to drive: the one asked for, else Playwright's own, else the system's."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("ui_check: Playwright is missing: `make ui-check` installs it (or `pip install playwright`)")
    if explicit or os.environ.get("PRM_UI_BROWSER"):
        path = explicit or os.environ["PRM_UI_BROWSER"]
        if not Path(path).is_file():
            raise SystemExit(f"ui_check: browser {path} does not exist")
        return path
    with sync_playwright() as p:
        if Path(p.chromium.executable_path).is_file():
            return p.chromium.executable_path
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit(f"ui_check: {INSTALL}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base: str, query: str, **variables) -> dict:
    req = urllib.request.Request(f"{base}/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.load(r)
    if out.get("errors"):
        raise RuntimeError(f"GraphQL error: {out['errors']}")
    return out["data"]


WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
  __typename ... on PythonError { message }
  ... on RepositoryLocation { repositories { name jobs { name } } } } } } } }"""


def start_server(port: int, data_dir: str, home: str, log: Path) -> subprocess.Popen:
    """`prm ui` in a process group of its own, so that stopping it stops the webserver and daemon too."""
    env = dict(os.environ, DAGSTER_HOME=home, PRM_DATA_DIR=data_dir,
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port), "--data-dir", data_dir]
    # SIGINT as default: a shell's background job ignores it, and dagster dev then ignores SIGTERM as well
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_loaded(base: str, proc: subprocess.Popen, log: Path, timeout: float) -> str:
    """The code location's name once the server answers with it loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            entries = graphql(base, WORKSPACE)["workspaceOrError"]["locationEntries"]
        except OSError:
            entries = []
        for e in entries:
            loc = e["locationOrLoadError"] or {}
            if loc.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {e['name']} failed to load: {loc['message']}")
            if e["loadStatus"] == "LOADED" and any(j["name"] in JOBS for r in loc["repositories"] for j in r["jobs"]):
                return e["name"]
        time.sleep(2)
    raise RuntimeError(f"dagster dev did not load within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGINT to dagster dev (it shuts its webserver and daemon down), then SIGKILL to whatever of it is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Browser:
    """One headless page: open a route, wait until its text shows what the check needs, screenshot it."""

    def __init__(self, page, base: str, shots: Path | None, timeout: float):
        self.page, self.base, self.shots, self.timeout = page, base, shots, timeout

    def open(self, path: str, ready: str | list[str], name: str) -> tuple[str, str | None]:
        """The page's text once `ready` (a regex, or a list of them all) matches, or what it shows at the timeout."""
        self.page.goto(self.base + path)
        deadline, text = time.monotonic() + self.timeout, ""
        while time.monotonic() < deadline:
            text = self.page.inner_text("body")
            if all(re.search(r, text) for r in ([ready] if isinstance(ready, str) else ready)):
                break
            self.page.wait_for_timeout(500)
        self.page.wait_for_timeout(500)  # the rest of the page's queries
        return self.page.inner_text("body"), self.shot(name)

    def shot(self, name: str, locator=None) -> str | None:
        if not self.shots:
            return None
        path = self.shots / f"{name}.png"
        (locator or self.page).screenshot(path=str(path), **({} if locator else {"full_page": True}))
        return str(path)
