"""Dagster Definitions (resources chosen by environment), jobs, sensors, releases and the `prm` command."""
