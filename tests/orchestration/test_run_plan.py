"""`prm run`'s flags checked once into a plan (nothing trained): the plan's fields, or every problem, one line each."""

import dataclasses

import pytest

from orchestration.cli import build_parser, main
from orchestration.cli_checks import FlagProblems, RunPlan, RunStage, plan_run


@pytest.fixture(autouse=True)
def _no_env_defaults(monkeypatch, tmp_path):
    for name in ("PRM_DOMAIN", "PRM_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRM_DATA_DIR", str(tmp_path / "data"))


def _plan(*flags: str) -> RunPlan:
    return plan_run(build_parser().parse_args(["run", *flags]))


def test_default_flags_plan_the_three_stages():
    plan = _plan()
    assert plan.shard_keys == ("arith-0000", "arith-0001")
    assert plan.implicit_ranges == (("ce", "dpo"),) and plan.selection is None
    assert (plan.domain, plan.engine, plan.data_dir) == ("arith", "auto", None)
    assert plan.environ == {"PRM_PROGRESS": "1"}
    shard, implicit, prm = plan.stages
    assert (shard.job, shard.partition_keys, shard.selection) == ("default_pipeline", plan.shard_keys, None)
    assert "step_truth" in shard.assets and "rollouts" in shard.assets
    assert implicit == RunStage("implicit_pipeline", ("ce", "dpo"), ("implicit_prm",), None)
    assert (prm.job, prm.partition_keys, prm.selection) == ("prm_pipeline", ("vanilla", "scan", "oracle"), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.domain = "math"


def test_assets_and_losses_choose_the_runs():
    """Non-contiguous losses are two implicit runs; a stage `--assets` leaves empty is no run."""
    plan = _plan("--shards", "3", "--implicit-losses", "nca, ce,kto", "--assets", "rollouts, implicit_prm",
                 "--engine", "transformers", "--quiet")
    assert plan.shard_keys == ("arith-0000", "arith-0001", "arith-0002")
    assert plan.implicit_ranges == (("ce",), ("kto", "nca")) and plan.selection == ("rollouts", "implicit_prm")
    assert plan.engine == "transformers" and plan.environ == {"PRM_PROGRESS": "0", "PRM_ENGINE": "transformers"}
    assert plan.stages == (RunStage("default_pipeline", plan.shard_keys, ("rollouts",), ("rollouts",)),
                           RunStage("implicit_pipeline", ("ce",), ("implicit_prm",), ("implicit_prm",)),
                           RunStage("implicit_pipeline", ("kto", "nca"), ("implicit_prm",), ("implicit_prm",)))
    assert _plan("--implicit-losses", "none", "--assets", "implicit_prm").stages == ()


def test_a_real_domain_plans_file_shards_without_the_exact_labeller(tmp_path):
    policy, source = tmp_path / "policy", tmp_path / "src"
    policy.mkdir()
    (policy / "config.json").write_text("{}")
    source.mkdir()
    for name in ("b.jsonl", "a.parquet", "notes.txt"):
        (source / name).write_text("")
    plan = _plan("--domain", "gsm8k", "--policy", str(policy), "--source", str(source), "--implicit-losses", "all")
    assert plan.shard_keys == ("a", "b") and plan.domain == "gsm8k"
    assert plan.environ == {"PRM_PROGRESS": "1", "PRM_DOMAIN": "gsm8k"}
    assert plan.implicit_ranges == (("ce", "dpo", "kto", "nca"),)
    shard, _, prm = plan.stages
    assert shard.job == "text_pipeline" and shard.partition_keys == ("a", "b") and "step_truth" not in shard.assets
    assert prm.partition_keys == ("vanilla", "scan")


def test_prm_domain_from_the_environment_decides_the_assets(monkeypatch):
    monkeypatch.setenv("PRM_DOMAIN", "math")
    with pytest.raises(FlagProblems) as e:  # the text pipeline has no exact step truth
        _plan("--assets", "step_truth")
    (problem,) = e.value.problems
    assert problem.startswith("--assets: unknown step_truth")


def test_every_bad_flag_is_one_line_naming_it_and_exit_2(tmp_path, capsys):
    flags = ["--source", "/no/such/folder", "--implicit-losses", "ce,xyz", "--assets", "nope", "--domain", "math",
             "--processbench", "/no/such/folder"]
    with pytest.raises(FlagProblems) as e:
        _plan(*flags)
    named = ["--source", "--implicit-losses", "--assets", "--processbench", "--domain"]
    with pytest.raises(FlagProblems) as left_out:  # a model flag for an asset --assets leaves out is not ignored
        _plan("--policy", str(tmp_path), "--prm-backbone", str(tmp_path), "--assets", "rollouts")
    assert [p.split()[0] for p in left_out.value.problems] == ["--policy", "--prm-backbone"] * 2  # and not a model folder
    assert "sets the policy_model asset, which --assets leaves out; add policy_model to --assets" in left_out.value.problems[0]
    assert [p.split()[0].rstrip(":") for p in e.value.problems] == named
    assert main(["run", *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"prm run: error: {p}" for p in e.value.problems]
    assert not (tmp_path / "home").exists() and not (tmp_path / "data").exists()
