"""The checked-in bad-input corpus of problem files (tests/data/bad_inputs) and what each row should become."""

import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
FILES = CORPUS / "problems"
_ALL = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
EXPECTED: dict[str, dict[str, dict]] = {name: rows for name, rows in _ALL.items() if "skipped" not in rows}  # read, by line
SKIPPED: dict[str, str] = {name: v["skipped"] for name, v in _ALL.items() if "skipped" in v}  # not read: why
