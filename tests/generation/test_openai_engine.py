"""`engine: openai` against a real `vllm serve` of the tiny policy (the session's `vllm_server`): the samples of the
in-process vLLM engine, rollouts and MC through it, retries of injected 429/500s, a server dying mid-call, the key."""

import json

import pytest

from prm_core.domains.arith import ArithDomain
from prm_core.domains.problems import synthetic_shard
from prm_core.generation.engines import make_engine
from prm_core.generation.openai_engine import EndpointError, OpenAIEngine
from prm_core.generation.sampling import SamplingSpec
from tests.support.vllm_server import fault_proxy

pytestmark = pytest.mark.vllm

PROMPTS = ["Tom has 17 pens. He triples his pens. How many now?\n", "Ann has 3 cats.\n",
           "Sam has 4 coins. He finds 2 more. How many now?\n" * 2, "x\n"]
SPEC = SamplingSpec(n=3, max_new_tokens=24, seed=5, logprobs=True)
KEY = "sk-test-0123456789abcdef"  # what a key looks like; the test server takes any


def ids(rows):
    return [[s.token_ids for s in row] for row in rows]


@pytest.fixture(scope="module")
def local_vllm(tiny_policy):
    """The in-process vLLM engine on the same model, for what the served one must reproduce."""
    engine = make_engine("vllm", tiny_policy, max_num_seqs=64, kv_cache_gib=1)
    yield engine
    engine.close()


@pytest.fixture
def served(vllm_server, tiny_policy):
    engine = make_engine("openai", tiny_policy, base_url=vllm_server.base_url, max_concurrency=4)
    yield engine
    engine.close()


def test_served_samples_are_the_in_process_engines(served, local_vllm, vllm_server):
    """Same model, same per-request seeds: the same token ids, finish reasons, texts and log-probs, also for a slice
    of the call (`offset`) and at temperature 0; usage counts the eos of each stopped sample, which samples drop."""
    print(f"vllm serve ready in {vllm_server.startup_seconds:.1f} s")
    out, local = served.generate(PROMPTS, SPEC), local_vllm.generate(PROMPTS, SPEC)
    assert ids(out) == ids(local) and all(len(row) == SPEC.n for row in out)
    for row, ref in zip(out, local):
        assert [s.finish_reason for s in row] == [s.finish_reason for s in ref]
        assert [s.text for s in row] == [s.text for s in ref]
        for s, r in zip(row, ref):
            assert s.token_logprobs == pytest.approx(r.token_logprobs, abs=1e-4)
    assert ids(served.generate(PROMPTS[2:], SPEC, offset=2)) == ids(out[2:])
    greedy = SamplingSpec(n=1, temperature=0, max_new_tokens=16)
    once = ids(served.generate(PROMPTS, greedy))
    assert once == ids(local_vllm.generate(PROMPTS, greedy))
    # vLLM refuses n > 1 at temperature 0 (both engines): the served engine asks once and copies, as greedy would
    assert ids(served.generate(PROMPTS, SamplingSpec(n=2, temperature=0, max_new_tokens=16))) == [r * 2 for r in once]
    first = served.stats.calls[0]
    stopped = sum(s.finish_reason == "stop" for row in out for s in row)
    assert first["generated_tokens"] == sum(s.num_tokens for row in out for s in row) + stopped
    assert served.stats.prompt_tokens >= local_vllm.stats.prompt_tokens // 2 and served.stats.retries == 0
    assert served.context_len == 512  # what the server reports for its model


def test_rollouts_and_mc_through_a_served_engine(served, local_vllm):
    """The library's rollouts and vanilla MC values through the server: the rows of the in-process engine."""
    from prm_core.generation.rollouts import sample_rollouts
    from prm_core.labels.mc_estimates import AnnotationConfig, annotate, responses_of

    domain = ArithDomain()
    pool = synthetic_shard(domain, "arith-0000", 3, 0)
    spec = SamplingSpec(n=2, max_new_tokens=48, seed=3)
    rollouts = sample_rollouts(domain, served, pool, spec)
    assert rollouts.equals(sample_rollouts(domain, local_vllm, pool, spec))
    responses, sc = responses_of(pool, rollouts)[:2], {p: 0.5 for p in pool["problem_id"]}
    mc_spec = SamplingSpec(temperature=0.7, top_p=0.8, max_new_tokens=48, seed=11)
    mc, cost = annotate("vanilla", domain, served, responses, sc, AnnotationConfig(k=2), mc_spec)
    ref, _ = annotate("vanilla", domain, local_vllm, responses, sc, AnnotationConfig(k=2), mc_spec)
    assert mc.height == sum(len(r.steps) for r in responses) and mc.equals(ref)
    assert mc["mc_value"].is_between(0, 1).all() and cost.rollouts > 0


def test_injected_429_and_500_are_retried_and_counted(vllm_server, tiny_policy, served):
    with fault_proxy(vllm_server, fail=(429, 500)) as (url, _):
        engine = OpenAIEngine(tiny_policy, base_url=url, max_concurrency=1, max_retries=3, backoff_s=0.01)
        out = engine.generate(PROMPTS[:2], SPEC)
    assert engine.stats.retries == 2 and engine.stats.calls[-1]["retries"] == 2
    assert ids(out) == ids(served.generate(PROMPTS[:2], SPEC))  # retried requests keep their seeds


def test_a_server_dying_mid_call_fails_naming_endpoint_and_prompt(vllm_server, tiny_policy):
    with fault_proxy(vllm_server, die_at=2) as (url, proc):
        engine = OpenAIEngine(tiny_policy, base_url=url, max_concurrency=1, max_retries=2, backoff_s=0.01, timeout_s=10)
        with pytest.raises(EndpointError, match=r"127\.0\.0\.1:\d+/v1: prompt 12 failed after 3 attempts \(2 retries\)"):
            engine.generate(PROMPTS, SamplingSpec(max_new_tokens=8), offset=10)
        assert proc.wait(10) != 0  # it really died (SIGKILL) with the request in flight
    assert engine.stats.retries == 2


def test_the_api_key_stays_out_of_repr_stats_and_errors(vllm_server, tiny_policy, monkeypatch):
    """The key comes from the variable `api_key_env` names; a server echoing it into its error is masked."""
    from assets.common.resources import GeneratorResource

    monkeypatch.delenv("PRM_TEST_API_KEY", raising=False)
    with pytest.raises(ValueError, match="PRM_TEST_API_KEY"):
        OpenAIEngine(tiny_policy, base_url=vllm_server.base_url, api_key_env="PRM_TEST_API_KEY")
    monkeypatch.setenv("PRM_TEST_API_KEY", KEY)
    resource = GeneratorResource(engine="openai", base_url=vllm_server.base_url, api_key_env="PRM_TEST_API_KEY",
                                 max_concurrency=2)
    engine = resource.get(tiny_policy)
    assert isinstance(engine, OpenAIEngine) and engine.max_concurrency == 2
    engine.generate(PROMPTS[:1], SamplingSpec(max_new_tokens=4))
    with fault_proxy(vllm_server, fail=(500, 500)) as (url, _):
        echoing = OpenAIEngine(tiny_policy, base_url=url, api_key_env="PRM_TEST_API_KEY", max_retries=1, backoff_s=0.01)
        with pytest.raises(EndpointError) as failed:
            echoing.generate(PROMPTS[:1], SamplingSpec(max_new_tokens=4), offset=7)
    assert "prompt 7 failed after 2 attempts" in str(failed.value) and "Bearer ***" in str(failed.value)
    with pytest.raises(EndpointError, match="prompt 0 was refused: NotFoundError"):  # a 404 is not retried
        OpenAIEngine(tiny_policy, base_url=vllm_server.base_url, served_model="no-such-model").generate(
            PROMPTS[:1], SamplingSpec(max_new_tokens=4))
    for text in (repr(engine), repr(echoing), str(failed.value), json.dumps(engine.stats.__dict__),
                 resource.model_dump_json()):
        assert KEY not in text
    resource.teardown_after_execution(None)


def test_auto_never_picks_openai(tiny_policy, monkeypatch):
    from prm_core.generation import engines

    for gpu in (False, True):
        for small in (0, engines.SMALL_MODEL_BYTES):
            monkeypatch.setattr(engines, "on_gpu", lambda gpu=gpu: gpu)
            monkeypatch.setattr(engines, "SMALL_MODEL_BYTES", small)
            assert engines.auto_engine(tiny_policy) in ("vllm", "transformers")
