"""PRM Foundry's pure library: process-supervision data and process reward models, in layers that follow the
data flow (lineage, runtime) ← domains ← generation ← labels | prm ← evaluation. Never imports dagster.

See ARCHITECTURE.md at the project root for the map."""
