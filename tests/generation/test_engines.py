"""Both generation engines on a tiny locally built model."""

import os
from pathlib import Path

import pytest

from prm_core.generation.engines import make_engine, vllm_available
from prm_core.generation.sampling import SamplingSpec
from prm_core.generation.transformers_engine import TransformersEngine, next_tokens, row_keys

PROMPTS = ["Tom has 17 pens. He triples his pens. How many now?\n", "Sam has 4 coins. He finds 2 more. How many now?\n"]


def _check(out, spec, engine):
    assert len(out) == len(PROMPTS) and all(len(row) == spec.n for row in out)
    eos = engine.tokenizer.eos_token_id
    for row in out:
        for s in row:
            assert eos not in s.token_ids and 0 < s.num_tokens <= spec.max_new_tokens
            assert s.finish_reason in ("stop", "length")
            assert s.text == engine.tokenizer.decode(s.token_ids, skip_special_tokens=True)
            if spec.logprobs:
                assert len(s.token_logprobs) == s.num_tokens and all(lp <= 0 for lp in s.token_logprobs)
    assert engine.stats.generated_tokens == sum(s.num_tokens for row in out for s in row)


def test_transformers_engine_samples_n_seeded(tiny_policy):
    engine = TransformersEngine(tiny_policy, batch_size=3)
    spec = SamplingSpec(n=3, max_new_tokens=24, seed=5, logprobs=True)
    out = engine.generate(PROMPTS, spec)
    _check(out, spec, engine)
    again = engine.generate(PROMPTS, spec)
    assert [[s.token_ids for s in r] for r in out] == [[s.token_ids for s in r] for r in again]
    greedy = engine.generate(PROMPTS, SamplingSpec(n=2, temperature=0, max_new_tokens=16))
    assert greedy[0][0].token_ids == greedy[0][1].token_ids


MIXED = [PROMPTS[0], "Ann has 3 cats.\n", PROMPTS[1] * 2, "Bo has 11 hats. He loses 4. How many now?\n", "x\n"]


def test_transformers_engine_samples_per_request_not_per_batch(tiny_policy):
    """Per-request seeds, as vLLM's: a prompt's samples are the same alone, in a slice (`offset`) or in any batch."""
    spec = SamplingSpec(n=3, max_new_tokens=20, seed=9, logprobs=True)
    whole = TransformersEngine(tiny_policy, batch_size=64).generate(MIXED, spec)
    small = TransformersEngine(tiny_policy, batch_size=3)  # one prompt per batch
    tail = small.generate(MIXED[2:], spec, offset=2)
    ids = lambda rows: [[s.token_ids for s in r] for r in rows]  # noqa: E731
    assert ids(tail) == ids(whole[2:])
    assert ids(small.generate(MIXED[:1], spec)) == ids(whole[:1])
    assert len({tuple(s.token_ids) for s in whole[0]}) > 1  # the n samples of a prompt differ


def test_transformers_engine_logprobs_are_the_models_own(tiny_policy):
    """The loop's KV cache, positions and padding give what one full forward over prompt + sample gives."""
    import torch

    engine = TransformersEngine(tiny_policy, batch_size=64)
    spec = SamplingSpec(n=2, max_new_tokens=24, seed=1, temperature=0.7, logprobs=True)
    out = engine.generate(MIXED, spec)
    tok = engine.tokenizer
    for prompt, row in zip(MIXED, out):
        p = tok(prompt)["input_ids"]
        for s in row:
            ids = torch.tensor([p + s.token_ids])
            with torch.inference_mode():
                logits = engine.model(input_ids=ids).logits[0, len(p) - 1 : -1]
            want = torch.log_softmax(logits / spec.temperature, -1).gather(-1, ids[0, len(p):, None])[:, 0]
            assert torch.allclose(torch.tensor(s.token_logprobs), want, atol=1e-4)


def test_transformers_engine_greedy_is_generates_greedy(tiny_policy):
    import torch

    engine = TransformersEngine(tiny_policy)
    out = engine.generate(MIXED, SamplingSpec(n=1, temperature=0, max_new_tokens=16))
    tok = engine.tokenizer
    for prompt, row in zip(MIXED, out):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.inference_mode():
            ref = engine.model.generate(input_ids=ids, do_sample=False, max_new_tokens=16, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        assert row[0].token_ids == (ref[: ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref)


def test_next_tokens_samples_the_top_p_nucleus_at_its_probabilities():
    import torch

    keys = row_keys(range(20_000), 1)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).expand(len(keys), 4)
    tok, lp = next_tokens(logits, SamplingSpec(temperature=1.0), keys, step=0)
    freq = torch.bincount(tok, minlength=4) / len(keys)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)
    assert torch.allclose(lp, logits[0][tok], atol=1e-6)
    nucleus, _ = next_tokens(logits, SamplingSpec(temperature=1.0, top_p=0.7), keys, step=0)
    freq = torch.bincount(nucleus, minlength=4) / len(keys)
    assert freq[2:].sum() == 0 and abs(float(freq[0]) - 0.5 / 0.8) < 0.015
    later, _ = next_tokens(logits, SamplingSpec(temperature=1.0), keys, step=1)
    assert (later != tok).any()  # each step draws afresh


def test_transformers_engine_refuses_a_prompt_longer_than_its_context(tiny_policy):
    engine = TransformersEngine(tiny_policy, max_model_len=32)
    with pytest.raises(ValueError, match="prompt 4 has .* tokens; the context is 32"):
        engine.generate(["1 + 2 =", "1 + " * 40], SamplingSpec(max_new_tokens=4), offset=3)


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_vllm_engine_samples_n(tiny_policy):
    engine = make_engine("vllm", tiny_policy, max_num_seqs=64, kv_cache_gib=1)
    try:
        spec = SamplingSpec(n=3, max_new_tokens=24, seed=5, logprobs=True)
        out = engine.generate(PROMPTS, spec)
        _check(out, spec, engine)
        # per-request seeds: the same call gives the same samples, whatever ran before
        again = engine.generate(PROMPTS, spec)
        assert [[s.token_ids for s in r] for r in out] == [[s.token_ids for s in r] for r in again]
        greedy = engine.generate(PROMPTS, SamplingSpec(n=1, temperature=0, max_new_tokens=16))
        ref = TransformersEngine(tiny_policy).generate(PROMPTS, SamplingSpec(n=1, temperature=0, max_new_tokens=16))
        # both engines run the same weights: the greedy first token agrees (later ones may split near-ties)
        assert [r[0].token_ids[:1] for r in greedy] == [r[0].token_ids[:1] for r in ref]
    finally:
        engine.close()


def test_auto_picks_an_available_engine(tiny_policy, monkeypatch, tmp_path):
    from prm_core.generation import engines

    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(engines, "on_gpu", lambda: False)
    assert engines.auto_engine(tiny_policy) == "transformers"  # a small model on CPU: our loop
    big = tmp_path / "big"  # weights as a PyTorch .bin (sparse: no disk used) count as much as safetensors
    big.mkdir()
    with open(big / "pytorch_model.bin", "wb") as f:
        f.truncate(engines.SMALL_MODEL_BYTES + 1)
    assert engines.auto_engine(big) == "vllm"
    monkeypatch.setattr(engines, "SMALL_MODEL_BYTES", 0)
    assert engines.auto_engine(tiny_policy) == "vllm"  # a big one: vLLM
    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    assert make_engine("auto", tiny_policy).name == "transformers"
    with pytest.raises(ValueError, match="unknown engine"):
        make_engine("tgi", tiny_policy)


FAIL_AFTER_ENGINE = '''
import sys
import dagster as dg
from assets.common.resources import GeneratorResource
from prm_core.generation.sampling import SamplingSpec

@dg.asset
def fails_after_generating(generator: GeneratorResource) -> None:
    engine = generator.get(sys.argv[1])
    engine.generate(["1 + 2 ="], SamplingSpec(n=1, max_new_tokens=4, temperature=1.0))
    engine.generate(["1 + " * 2000], SamplingSpec(n=1, max_new_tokens=4))  # raises inside vLLM: longer than its context

if __name__ == "__main__":
    result = dg.materialize([fails_after_generating], raise_on_error=False,
                            resources={"generator": GeneratorResource(engine="vllm", max_num_seqs=8, kv_cache_gib=1,
                                                                      in_process=False)})
    print("run success:", result.success, flush=True)
    sys.exit(0 if result.success else 3)
'''


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_failed_step_with_vllm_up_exits(tiny_policy, tmp_path):
    """A step that fails once the vLLM engine is up: the run's teardown shuts the engine-core process down and
    the process exits (before, the interpreter waited on the idle `VLLM::EngineCore` child for good). The engine
    core runs as a process of its own here, as on GPU (on CPU it runs in-process by default: no child at all)."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "fail_after_engine.py"
    script.write_text(FAIL_AFTER_ENGINE)
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_policy)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
                            env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the engine-core children too, not only the hung parent
        proc.communicate()
        pytest.fail("the process did not exit within 120 s of a failed step with the vLLM engine up")
    assert proc.returncode == 3, out[-2000:] + err[-4000:]
    assert "run success: False" in out and "maximum context length" in err


def test_vllm_compiles_into_a_cache_of_this_cpu_capability(monkeypatch, tmp_path):
    """Kernels compiled for AVX512 and read under ATEN_CPU_CAPABILITY=avx2 made vLLM sample garbage (issue 24): the
    engine's inductor cache is one per capability, also after torch wrote its default dir into the environment."""
    import torch
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from prm_core.generation.vllm_engine import use_inductor_cache_per_capability

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    use_inductor_cache_per_capability()
    assert Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]).name == "avx2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what inductor itself writes on first use
    use_inductor_cache_per_capability()
    assert Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]).name == "avx2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # the user's own choice stays
    use_inductor_cache_per_capability()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
