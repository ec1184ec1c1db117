"""The checked-in bad-input corpus of problem files (tests/data/bad_inputs) and what each row should become."""

import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
FILES = CORPUS / "problems"
EXPECTED: dict[str, dict[str, dict]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
