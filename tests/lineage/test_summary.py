"""The summary's stage table: `run.stage_seconds.<asset>` keys in run order, printed with each stage's share."""

from prm_core.lineage.summary import STAGE_PREFIX, format_stage_table, stage_keys, stage_rows, update_summary


def test_stage_table_keys_shares_and_replacement(tmp_path):
    keys = stage_keys({"policy_model": 300.04, "mc_estimates": 100.0, "other": 100.0})
    assert list(keys) == ["run.stage_seconds.policy_model", "run.stage_seconds.mc_estimates", "run.stage_seconds.other"]
    assert keys["run.stage_seconds.policy_model"] == 300.0
    table = format_stage_table({"policy.accuracy": 0.7, **keys}).splitlines()
    assert table[2].split() == ["policy_model", "300.0", "60.0%"]
    assert table[-1].split() == ["total", "500.0", "100.0%"]
    assert format_stage_table({"policy.accuracy": 0.7}) == ""
    update_summary(tmp_path, {"policy.accuracy": 0.7, **keys})
    merged = update_summary(tmp_path, stage_keys({"rollouts": 5.0}), drop_prefix=STAGE_PREFIX)  # a new run's table
    assert merged == {"policy.accuracy": 0.7, "run.stage_seconds.rollouts": 5.0}


def test_renamed_stages_keep_their_old_keys_for_one_release():
    keys = stage_keys({"actprm_model": 104.04, "actprm_selection": 0.5, "other": 10.0})
    assert keys["run.stage_seconds.actprm_model"] == keys["run.stage_seconds.active_prm"] == 104.0
    assert keys["run.stage_seconds.actprm_selection"] == keys["run.stage_seconds.active_selection"] == 0.5
    assert stage_rows(keys) == [("actprm_model", 104.0), ("actprm_selection", 0.5), ("other", 10.0)]  # counted once
    assert format_stage_table(keys).splitlines()[-1].split() == ["total", "114.5", "100.0%"]
    assert "run.stage_seconds.active_prm" not in stage_keys({"rollouts": 1.0})  # no alias without its stage


def test_summary_changes_name_every_edited_number_but_not_timings():
    from prm_core.lineage.summary import is_timing_key, summary_changes

    released = {"rollouts.accuracy": 0.633, "run.seconds": 600.0, "run.stage_seconds.rollouts": 4.0, "run.id": "a",
                "rollouts.tokens_per_s": 9000.0, "mc.vanilla.seconds": 80.0, "prm.scan.f1": 0.9}
    now = {**released, "rollouts.accuracy": 0.99, "run.seconds": 12.0, "run.id": "b", "rollouts.tokens_per_s": 1.0,
           "mc.vanilla.seconds": 1.0, "extra.key": 1}
    del now["prm.scan.f1"]
    assert summary_changes(released, now) == ["summary: extra.key is 1, released as '(absent)'",
                                              "summary: prm.scan.f1 is '(absent)', released as 0.9",
                                              "summary: rollouts.accuracy is 0.99, released as 0.633"]
    assert not is_timing_key("mc.vanilla.tokens") and is_timing_key("policy.train_seconds")


def test_a_summary_names_the_stages_it_has_no_results_from():
    from prm_core.lineage.summary import STAGE_MARKS, missing_stages

    assert missing_stages({}) == list(STAGE_MARKS)
    partial = {"rollouts.accuracy": 0.7, "mc.vanilla.seconds": 3.0, "labels.scan.first_error_acc": 0.9,
               "labels.vanilla.labelled": 10, "prm.scan.precision": "fp32", "prm_backbone.precision": "fp32"}
    assert missing_stages(partial) == ["implicit_prm", "actprm_model", "benchmark_scores"]
    done = {**partial, "implicit.ce.precision": "fp32", "actprm.f1": 0.8, "bon.majority": 0.7}
    assert missing_stages(done) == []
    # denoised_labels' counts (labels.<set>.labelled) are not the audit's results; the backbone is not a PRM
    assert "label_audit" in missing_stages({"labels.scan.labelled": 3}) and "prm_model" in missing_stages({"prm_backbone.precision": "fp32"})
    # real data (no exact checker): no audit and no ActPRM to wait for; benchmark_scores says it ran
    text = {"pool.exact_labels": False, **{k: v for k, v in partial.items() if not k.startswith("labels.")}}
    assert missing_stages(text) == ["implicit_prm", "benchmark_scores"]
    assert missing_stages({**text, "implicit.ce.precision": "fp32", "benchmark.prms": 2}) == []


def test_the_headline_is_the_quoted_keys_present_in_order():
    from prm_core.lineage.summary import format_headline

    text = format_headline({"prm.scan.f1": 0.9012, "policy.accuracy": 0.726, "unrelated": 1})
    assert [line.split()[0] for line in text.splitlines()] == ["policy.accuracy", "prm.scan.f1"]
    assert format_headline({}) == ""
