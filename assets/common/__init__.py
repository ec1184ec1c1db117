"""What every asset module and `orchestration/` share, below both: resources, partitions, metadata helpers,
sampling config, MLflow tracking and the project's paths. Imports `prm_core` only, never `orchestration`."""
