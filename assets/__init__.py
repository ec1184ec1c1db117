"""Dagster assets, one module per stage; thin wrappers over `prm_core`."""
