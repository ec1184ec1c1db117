"""What the Dagster catalog shows of each asset: owner, tags and kinds, freshness on the sensor's path, blocking checks."""

from datetime import timedelta

import dagster as dg

from orchestration.definitions import FRESH_ON_NEW_FILES, OWNER, defs
from orchestration.jobs import COMPARE_STAGE, PIPELINE_ASSETS


def _specs() -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for a in defs().assets for spec in a.specs}


def test_every_asset_has_the_owner_its_stage_layer_domain_and_kinds():
    specs = _specs()
    assert sorted(specs) == sorted(PIPELINE_ASSETS + COMPARE_STAGE)
    for name, spec in specs.items():
        assert spec.owners == [OWNER] and spec.kinds, name
        assert spec.tags["layer"] == spec.group_name and spec.tags["stage"] in {"shard", "implicit", "prm", "compare"}, name
    assert specs["method_frontier"].tags == {**specs["method_frontier"].tags, "stage": "compare", "domain": "arith"}
    assert specs["label_audit"].tags["domain"] == "arith" and specs["rollouts"].tags["domain"] == "any"
    assert specs["prm_model"].tags["stage"] == "prm" and specs["implicit_prm"].tags["stage"] == "implicit"
    assert {"parquet", "polars"} <= specs["problem_pool"].kinds and "mlflow" in specs["prm_model"].kinds
    assert "parquet" in specs["label_audit"].kinds and "parquet" in specs["benchmark_scores"].kinds


def test_freshness_on_what_new_problem_files_refresh_with_an_overridable_window(monkeypatch):
    fresh = {name: spec.freshness_policy for name, spec in _specs().items() if spec.freshness_policy}
    assert sorted(fresh) == sorted(FRESH_ON_NEW_FILES)
    policy = fresh["label_exports"]
    assert isinstance(policy, dg.FreshnessPolicy)
    assert (policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()) == (timedelta(hours=24), timedelta(hours=12))
    monkeypatch.setenv("PRM_FRESHNESS_HOURS", "6")
    policy = _specs()["problem_pool"].freshness_policy
    assert (policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()) == (timedelta(hours=6), timedelta(hours=3))
    monkeypatch.setenv("PRM_FRESHNESS_HOURS", "0")
    assert not [s for s in _specs().values() if s.freshness_policy]


def test_the_blocking_checks_are_in_the_code_location():
    d = defs()
    blocking = {(spec.asset_key.to_user_string(), spec.name) for c in d.asset_checks for spec in c.check_specs if spec.blocking}
    assert blocking == {("label_audit", "audit_is_sound"), ("prm_model", "training_loss_finite"),
                        ("benchmark_sets", "processbench_sound")}
    job = d.resolve_job_def("prm_pipeline")
    assert dg.AssetCheckKey(dg.AssetKey("prm_model"), "training_loss_finite") in job.asset_layer.asset_graph.asset_check_keys


def test_previews_fit_the_asset_page_and_name_the_columns_they_leave_out():
    import polars as pl

    from assets.common.metadata import preview, table

    wide = pl.DataFrame({f"c{i}": ["x" * 100] for i in range(12)})
    shown = preview(wide).value
    assert [c.name for c in shown.schema.columns] == [f"c{i}" for i in range(8)] + ["+4 more"]
    assert shown.schema.columns[-1].description == "not shown: c8, c9, c10, c11"
    assert shown.records[0].data["c0"] == "x" * 59 + "…"
    assert len(table(wide).value.schema.columns) == 12  # a whole small frame keeps every column
