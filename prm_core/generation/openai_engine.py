"""An engine over any OpenAI-compatible completions endpoint (`vllm serve`, SGLang, TGI, a hosted API), through the
`openai` client library: the model is served elsewhere and started once, this process only sends requests.

Prompts are tokenised here by the model's own tokenizer (a local folder) and, on a vLLM server, sent as token ids,
with vLLM's `return_token_ids` so the samples' token ids are the server's own: the same tokens as the in-process
engines. One request per prompt, seeded by its global index as the other engines seed it; requests run `max_concurrency`
at a time; 429, 5xx, timeouts and dropped connections are retried with exponential backoff (counted in
`stats.retries`), then the call fails naming the endpoint and the prompt. The API key is read from the environment
variable `api_key_env` names and lives only in the client: never in this object's repr, its stats or its errors.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prm_core.generation.sampling import GenerationStats, Sample, SamplingSpec, record_call, request_seed
from prm_core.runtime.progress import quiet_transformers

NO_KEY = "EMPTY"  # what the client sends to a server started without --api-key (vLLM's own examples use it)


class EndpointError(RuntimeError):
    """A request the endpoint did not answer after every retry, or refused: names the endpoint and the prompt."""


class _Stopped(Exception):
    """A request not sent (again) because another request of the same call failed for good."""


def retryable(error: Exception) -> bool:
    """429, 5xx, a timeout or a dropped connection: worth sending again; anything else (400, 401, 404) is not."""
    import openai

    if isinstance(error, openai.APIConnectionError):  # APITimeoutError is one
        return True
    return isinstance(error, openai.APIStatusError) and (error.status_code == 429 or error.status_code >= 500)


class OpenAIEngine:
    """The `Engine` interface over an OpenAI-compatible completions endpoint at `base_url`."""

    name = "openai"

    def __init__(
        self,
        model_dir: str | os.PathLike,
        base_url: str,
        served_model: str = "",
        api_key_env: str = "",
        tokenizer: str | os.PathLike = "",
        max_model_len: int = 512,
        max_concurrency: int = 8,
        max_retries: int = 4,
        timeout_s: float = 120.0,
        backoff_s: float = 0.5,
        vllm_params: bool = True,
        **_: object,
    ):
        """`model_dir`: the model's local folder (its tokenizer, unless `tokenizer` names another); `served_model`: the
        name the server knows it by (empty: the server's only model); `max_model_len`: the context when the server
        does not report its own; `vllm_params`: send vLLM's extras (token-id prompts, `return_token_ids`,
        `stop_token_ids`); off for other servers: text prompts, samples re-tokenised here."""
        import openai
        from transformers import AutoTokenizer

        if not base_url:
            raise ValueError("engine openai needs base_url: the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
        start = time.perf_counter()
        quiet_transformers()
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_concurrency, self.max_retries = max(1, max_concurrency), max(0, max_retries)
        self.backoff_s, self.vllm_params = backoff_s, vllm_params
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or model_dir))
        # retries are ours (counted, with the prompt's index in the error); the client's own would hide them
        self.client = openai.OpenAI(base_url=self.base_url, api_key=self._key(), timeout=timeout_s, max_retries=0)
        self.stats = GenerationStats()
        self._lock = threading.Lock()  # request threads count their retries into `stats`
        self.model, served_len = self._served_model(served_model)
        self.context_len = served_len or max_model_len
        self.startup_seconds = time.perf_counter() - start  # the tokenizer and one round trip: no model to load here

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def _key(self) -> str:
        if not self.api_key_env:
            return NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(f"engine openai: the environment variable {self.api_key_env} (api_key_env) is not set")
        return key

    def _scrub(self, text: str) -> str:
        """`text` with the API key masked: a server may echo a request's headers into its error."""
        key = getattr(self.client, "api_key", None)
        return text.replace(key, "***") if key and key != NO_KEY else text

    def _served_model(self, name: str) -> tuple[str, int | None]:
        """(the model to ask for, the context the server reports for it, if it does): vLLM's model list carries
        `max_model_len`; a server that lists no models (or forbids listing) is taken at its word."""
        try:
            models = self._retrying(lambda: self.client.models.list().data, "the model list")
        except EndpointError:
            if name:
                return name, None
            raise
        if not name:
            if len(models) != 1:
                raise ValueError(f"{self.base_url} serves {len(models)} models ({[m.id for m in models]}); name one "
                                 "with served_model")
            name = models[0].id
        found = [m for m in models if m.id == name]
        return name, (getattr(found[0], "max_model_len", None) if found else None)

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, offset: int = 0) -> list[list[Sample]]:
        """`spec.n` samples per prompt, prompt i seeded as global index `offset + i`, `max_concurrency` requests at a
        time; a prompt the context cannot hold fails the call before any request, as the transformers engine does."""
        start = time.perf_counter()
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        for i, p in enumerate(ids):
            if len(p) >= self.context_len:
                raise ValueError(f"prompt {offset + i} has {len(p)} tokens; the context is {self.context_len}")
        retries_before = self.stats.retries
        stop = threading.Event()  # set by the first request that fails for good: the others send nothing more
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            futures = [pool.submit(self._complete, prompts[i], ids[i], spec, offset + i, stop) for i in range(len(ids))]
        failed = [f.exception() for f in futures if f.exception() is not None and not isinstance(f.exception(), _Stopped)]
        if failed:
            raise failed[0]
        answers = [f.result() for f in futures]
        out = [samples for samples, _ in answers]
        # usage counts the eos of every stopped sample, which samples leave out (in-process engines count neither)
        usage = (sum(u[0] for _, u in answers), sum(u[1] for _, u in answers))
        record_call(self.stats, ids, out, time.perf_counter() - start, usage=usage)
        self.stats.calls[-1]["retries"] = self.stats.retries - retries_before
        return out

    def _complete(self, prompt: str, ids: list[int], spec: SamplingSpec, index: int,
                  stop: threading.Event) -> tuple[list[Sample], tuple[int, int]]:
        """One request: prompt `index`'s `n` samples and its (prompt, completion) tokens as the server counted them."""
        greedy = spec.temperature <= 0
        params = dict(
            model=self.model,
            prompt=ids if self.vllm_params else prompt,
            n=1 if greedy else spec.n,  # vLLM's server refuses n > 1 at temperature 0: one sample, copied below
            temperature=0.0 if greedy else spec.temperature,
            top_p=1.0 if greedy else spec.top_p,
            # at most what the context leaves: vLLM's server refuses more, its offline engine stops there ("length")
            max_tokens=min(spec.max_new_tokens, self.context_len - len(ids)),
            seed=request_seed(spec.seed, index),
            logprobs=0 if spec.logprobs else None,  # 0: the sampled token's own log-prob only
        )
        if self.vllm_params:
            params["extra_body"] = {"return_token_ids": True, "stop_token_ids": [self.tokenizer.eos_token_id]}
        response = self._retrying(lambda: self.client.completions.create(**params), f"prompt {index}", stop)
        choices = sorted(response.choices, key=lambda c: c.index)
        samples = [self._sample(c, spec) for c in choices]
        if greedy:
            samples = [dataclasses.replace(samples[0]) for _ in range(spec.n)]
        usage = response.usage
        counted = (usage.prompt_tokens, usage.completion_tokens) if usage else (len(ids), sum(s.num_tokens for s in samples))
        return samples, counted

    def _retrying(self, send, what: str, stop: threading.Event | None = None):
        """`send()`, sent again after a transient failure with exponential backoff; then an `EndpointError` (and
        `stop` set); `_Stopped` once another request of the call has failed for good."""
        stop = stop or threading.Event()
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                raise _Stopped()
            try:
                return send()
            except Exception as e:
                if not retryable(e) or attempt == self.max_retries:
                    stop.set()
                    tried = f"failed after {attempt + 1} attempts ({attempt} retries)" if retryable(e) else "was refused"
                    raise EndpointError(self._scrub(f"{self.base_url}: {what} {tried}: {type(e).__name__}: {e}")) from None
                with self._lock:
                    self.stats.retries += 1
                time.sleep(min(self.backoff_s * 2**attempt, 30.0))

    def _sample(self, choice, spec: SamplingSpec) -> Sample:
        """One sample as the in-process engines give it: token ids without the eos, text decoded from them."""
        tok, eos = self.tokenizer, self.tokenizer.eos_token_id
        token_ids = getattr(choice, "token_ids", None)  # vLLM's return_token_ids; not part of the OpenAI schema
        served = token_ids is not None
        if not served:
            # another server: re-tokenised from its text, which can differ from the sampled tokens where the
            # tokenizer has several ways to spell a text (not for the testbed's word-level one)
            token_ids = tok(choice.text, add_special_tokens=False)["input_ids"]
        lps = None
        if spec.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs is not None:
            lps = [lp for t, lp in zip(token_ids, choice.logprobs.token_logprobs) if t != eos]
        keep = [t for t in token_ids if t != eos]
        return Sample(
            text=tok.decode(keep, skip_special_tokens=True) if served else choice.text,
            token_ids=keep,
            finish_reason="stop" if choice.finish_reason == "stop" else "length",
            token_logprobs=lps,
        )

    def close(self) -> None:
        """Close the client's connections; the server keeps running (it is not ours)."""
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()
