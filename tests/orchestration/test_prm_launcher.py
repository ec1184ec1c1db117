"""PRM training in `accelerate launch` processes: data-parallel across two CPU processes (gloo), and started by
the `prm_model` asset through Dagster Pipes with its metrics streamed back."""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.common.resources import StorageResource, TrackingResource
from assets.prm_model import prm_model
from prm_core.prm.discriminative import PRMTrainConfig, load_prm, score_steps
from tests.support.prm import GOOD, corpus_file

ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


def test_fine_tuning_is_data_parallel_in_two_processes(tiny_policy, tmp_path):
    cfg = PRMTrainConfig(steps=6, batch_size=4, freeze_backbone=False)
    params = {"backbone": str(tiny_policy), "corpus": str(corpus_file(tmp_path / "corpus.parquet")), "train": asdict(cfg),
              "separator": "\n", "features": True, "out": str(tmp_path / "out")}
    (tmp_path / "params.json").write_text(json.dumps(params))
    cmd = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "assets.common.prm_train_job",
           str(tmp_path / "params.json")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = json.loads((tmp_path / "out" / "losses.json").read_text())
    assert len(losses) == 6 and all(v == v for v in losses)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["world_size"] == 2
    from transformers import AutoTokenizer

    model = load_prm(tmp_path / "out")
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert len(score_steps(model, tok, [GOOD.prompt], [GOOD.steps], "\n")[0]) == 2


def test_prm_model_asset_trains_through_pipes(tiny_policy, tmp_path):
    data = tmp_path / "data"
    storage = StorageResource(base_dir=str(data))
    corpus_file(data / "filtered_corpus" / "vanilla.parquet")
    storage.set_model("prm_backbone", tiny_policy)
    config = {"launcher": "accelerate", "num_processes": 2, "steps": 5, "batch_size": 4, "freeze_backbone": False}
    with dg.instance_for_test() as instance:
        result = dg.materialize([prm_model], instance=instance, partition_key="vanilla",
                                resources={"storage": storage, "tracking": TrackingResource(root=str(tmp_path))},
                                run_config={"ops": {"prm_model": {"config": config}}})
    assert result.success
    (event,) = result.get_asset_materialization_events()  # the label set's own metadata
    assert event.partition == "vanilla"
    info = event.materialization.metadata["training"].value
    assert info["launcher"] == "accelerate" and info["world_size"] == 2 and info["train_seconds"] > 0
    saved = data / "models" / "prm" / "vanilla"
    assert (saved / "model.safetensors").exists() and (saved / "modeling_prm.py").exists()  # exports load anywhere
