"""Dagster Definitions, resources, jobs, sensors and the `prm` command."""
