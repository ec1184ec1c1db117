"""Lineage, a leaf-level utility: storage behind UPath/fsspec with atomic writes and content hashes, release
manifests, and the run summary (`reports/summary.json`).
May import: nothing else in prm_core."""
