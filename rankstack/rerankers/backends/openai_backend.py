"""OpenAI-compatible servers: vLLM serve, SGLang, llama.cpp's server, hosted APIs.

Two endpoints:
- ``mode="chat"`` sends chat messages to ``/chat/completions`` (the server applies the chat template);
- ``mode="completions"`` sends text to ``/completions``: the chat template rendered here with a local
  tokenizer (``tokenizer=`` a HF tokenizer path, a model alias, or a tokenizer object), or, without
  one, the messages joined as plain text.

Log-probs come from ``logprobs``/``top_logprobs``: a server only returns the top ``top_logprobs``
alternatives, so :meth:`OpenAIBackend.next_token_logprobs` gives ``-inf`` to a candidate outside
them (counted in ``stats["logprob_candidates_missing"]`` and logged). An assistant prefix (FIRST's
``[``) cannot be sent through the chat endpoint, so it needs a local tokenizer: the prompt is then
rendered here and scored through ``/completions``.

Requests run on a thread pool of ``max_concurrency``; the ``openai`` client retries connection
errors, 408/409/429 and 5xx with exponential backoff (0.5 s doubling to 8 s, ``max_retries``
times) and gives each request ``timeout`` seconds.

Token counts come from the local tokenizer, else from the server's ``/tokenize`` endpoint
(llama.cpp and vLLM have one), else from an approximation of ``chars_per_token`` characters per
token (4.0 by default; logged once, since truncation is then only approximate).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rankstack.rerankers.backends.base import Backend, BackendError, Completion, Prompt, SamplingParams
from rankstack.rerankers.backends.server_tokens import ServerTokens
from rankstack.rerankers.backends.text import TokenizerText

log = logging.getLogger(__name__)

NEG_INF = float("-inf")


def _load_tokenizer(spec):
    if spec is None or not isinstance(spec, str):
        return spec
    from rankstack.models import load_tokenizer

    return load_tokenizer(spec)


class OpenAIBackend(TokenizerText, Backend):
    """A model behind an OpenAI-compatible HTTP API.

    ``model`` is the name the server knows the model by; ``base_url`` ends in ``/v1``
    (``http://127.0.0.1:8000/v1``). ``api_key`` defaults to ``$OPENAI_API_KEY`` or ``"EMPTY"``
    (local servers ignore it).
    """

    name = "openai"

    def __init__(self, model: str, base_url: str = "http://127.0.0.1:8000/v1", api_key: str | None = None,
                 mode: str = "chat", tokenizer=None, max_concurrency: int = 8, timeout: float = 60.0,
                 max_retries: int = 5, top_logprobs: int = 20, context_length: int | None = None,
                 max_n: int | None = None, chars_per_token: float = 4.0, extra_body: dict | None = None,
                 progress: bool = True):
        import openai

        if mode not in ("chat", "completions"):
            raise BackendError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if max_concurrency < 1:
            raise BackendError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.model_id = str(model)
        self.base_url = base_url.rstrip("/")
        self.mode = mode
        self.tokenizer = _load_tokenizer(tokenizer)
        self.max_concurrency = int(max_concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.top_logprobs = int(top_logprobs)
        self.chars_per_token = float(chars_per_token)
        self.extra_body = dict(extra_body or {})
        self.progress = progress
        self._context_length = context_length
        self._n_max = max_n  # samples per request the server takes (None: all n; learned on the first refusal)
        self._lock = threading.Lock()
        self.stats: Counter = Counter()
        self._checked: set[str] = set()
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                    timeout=self.timeout, max_retries=self.max_retries)
        self.server_tokens = ServerTokens(self._post, self.server_root, self.model_id, chars_per_token)

    # --- identity ------------------------------------------------------------------------
    @property
    def local_template(self) -> bool:
        """Prompts are rendered here (completions mode, or a tokenizer given) rather than by the server."""
        return self.mode == "completions" or self.tokenizer is not None

    def fingerprint(self) -> str:
        how = "chat" if not self.local_template else ("template" if self.tokenizer is not None else "plain")
        return f"openai:{self.base_url}:{self.model_id}:{how}"

    @property
    def server_root(self) -> str:
        """The server's root URL (``/tokenize``, ``/props`` and ``/health`` live there, not under ``/v1``)."""
        url = self.base_url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    # --- HTTP ----------------------------------------------------------------------------
    def _call(self, fn, what: str, absent: bool = False, **kwargs):
        """One API call with the client's retries; failures become a :class:`BackendError` (with
        ``absent``, HTTP 400/404/405/501 are re-raised as they are: an optional endpoint is missing)."""
        import openai

        with self._lock:
            self.stats["http_requests"] += 1
        try:
            return fn(**kwargs)
        except openai.APIConnectionError as e:  # includes timeouts, after the client's retries
            kind = "timed out" if isinstance(e, openai.APITimeoutError) else "cannot connect"
            raise BackendError(f"{what}: {kind} to {self.base_url} after {self.max_retries} retries "
                               f"(timeout {self.timeout:g}s each): {e}") from e
        except openai.APIStatusError as e:
            if absent and e.status_code in (400, 404, 405, 501):
                raise
            raise BackendError(f"{what}: server {self.base_url} answered HTTP {e.status_code}: {_message(e)}") from e

    def _map(self, fn, items: list, desc: str) -> list:
        """``fn`` over ``items`` on a pool of ``max_concurrency`` threads, results in order."""
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        bar = tqdm(total=len(items), desc=desc, unit="req", leave=False, disable=not self.progress or len(items) < 16)
        out: list = [None] * len(items)

        def run(i):
            out[i] = fn(items[i])
            bar.update(1)

        try:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
                for f in [pool.submit(run, i) for i in range(len(items))]:
                    f.result()  # re-raises the first failure
        finally:
            bar.close()
        return out

    # --- prompts (render: the local tokenizer's chat template, or the messages joined as plain text) ---
    def _request_for(self, prompt: Prompt, what: str) -> tuple[str, dict]:
        """``("chat", {"messages": ...})`` or ``("completions", {"prompt": text})`` for one prompt."""
        if self.local_template:
            return "completions", {"prompt": self.render(prompt)}
        if prompt.assistant_prefix:
            raise BackendError(
                f"{what}: the prompt has an assistant prefix {prompt.assistant_prefix!r}, which the chat endpoint "
                f"cannot continue from; give OpenAIBackend a tokenizer (tokenizer='<HF path or alias of "
                f"{self.model_id}>') so the chat template is rendered locally and sent to /completions")
        return "chat", {"messages": prompt.as_dicts()}

    # --- token budget: the local tokenizer, else the server's (:mod:`.server_tokens`) -------------
    def _post(self, route: str, body: dict, absent: bool = False):
        return self._call(self.client.post, f"POST {route}", absent=absent, path=self.server_root + route,
                          cast_to=object, body=body)

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) if self.tokenizer is not None else self.server_tokens.count(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        if self.tokenizer is not None:
            return super().truncate(text, max_tokens)
        return self.server_tokens.truncate(text, max_tokens)

    @property
    def context_length(self) -> int:
        if self._context_length is None:
            self._context_length = self._probe_context_length()
        return self._context_length

    def _probe_context_length(self) -> int:
        """llama.cpp's ``/props`` (``n_ctx``), vLLM's ``/v1/models`` (``max_model_len``), else the
        local tokenizer's ``model_max_length``, else 8192."""
        try:
            props = self.client.with_options(max_retries=1).get(self.server_root + "/props", cast_to=object)
            n = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if n:
                return int(n)
        except Exception:  # noqa: BLE001 - an optional endpoint; fall through to the next source
            pass
        try:
            for m in self.client.with_options(max_retries=1).models.list().data:
                n = getattr(m, "max_model_len", None) or (m.model_extra or {}).get("max_model_len")
                if n and m.id == self.model_id:
                    return int(n)
        except Exception:  # noqa: BLE001
            pass
        n = getattr(self.tokenizer, "model_max_length", None)
        return int(n) if n and n < 10**7 else 8192

    # --- next-token log-probs ------------------------------------------------------------
    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        cands = list(candidates)
        if not cands:
            raise BackendError("next_token_logprobs needs at least one candidate")
        self._check_single_tokens(cands)
        k = max(self.top_logprobs, 1)

        def one(prompt: Prompt) -> list[float]:
            endpoint, payload = self._request_for(prompt, "next_token_logprobs")
            if endpoint == "chat":
                resp = self._call(self.client.chat.completions.create, "chat logprobs", model=self.model_id,
                                  max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k,
                                  extra_body=self.extra_body or None, **payload)
            else:
                resp = self._call(self.client.completions.create, "completion logprobs", model=self.model_id,
                                  max_tokens=1, temperature=0.0, logprobs=k, extra_body=self.extra_body or None,
                                  **payload)
            choice = resp.model_dump()["choices"][0]
            steps = _parse_logprobs(choice.get("logprobs"))
            if not steps or not steps[0][2]:
                raise BackendError(
                    f"{self.base_url} returned no top log-probs for {self.model_id} ({endpoint} endpoint); scoring by "
                    f"log-probs (pointwise, FIRST) needs a server that returns logprobs/top_logprobs "
                    f"(vLLM, llama.cpp, SGLang) or the hf/vllm backend")
            top = steps[0][2]
            return [top.get(c, NEG_INF) for c in cands]

        rows = self._map(one, list(prompts), "logprobs")
        out = np.asarray(rows, dtype=np.float32).reshape(len(prompts), len(cands))
        missing = int(np.isneginf(out).sum())
        if missing:
            with self._lock:
                self.stats["logprob_candidates_missing"] += missing
            log.warning("%d of %d candidate log-probs were outside the server's top %d and count as -inf",
                        missing, out.size, k)
        return out

    # --- continuation log-probs (query likelihood) ------------------------------------------
    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Teacher-forced log-probs of each continuation through ``/completions`` with ``echo`` and
        ``logprobs`` (the prompt's own tokens scored; vLLM serve supports it). The prompt is
        rendered here (completions mode or a local tokenizer), the continuation appended, and the
        echoed tokens that start at or after the continuation's first character are its tokens. A
        server that does not echo prompt log-probs (llama.cpp's server, most hosted chat APIs)
        raises :class:`BackendError`."""
        if len(prompts) != len(continuations):
            raise BackendError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if not self.local_template:
            raise BackendError("continuation_logprobs needs the prompt rendered here and sent to /completions: "
                               f"give OpenAIBackend a tokenizer (the HF path or alias of {self.model_id}) or "
                               "mode='completions'")

        def one(pair) -> np.ndarray:
            prompt, cont = pair
            if not cont:
                return np.zeros(0, dtype=np.float32)
            head = self.render(prompt)
            text = head + cont
            resp = self._call(self.client.completions.create, "completion echo logprobs", model=self.model_id,
                              prompt=text, max_tokens=1, temperature=0.0, echo=True, logprobs=1,
                              extra_body=self.extra_body or None)
            lp = (resp.model_dump()["choices"][0].get("logprobs") or {})
            offsets, values = lp.get("text_offset") or [], lp.get("token_logprobs") or []
            picked = [v for o, v in zip(offsets, values) if len(head) <= o < len(text)]
            if not offsets or not picked or len(values) < 2 or any(v is None for v in picked):
                raise BackendError(
                    f"{self.base_url} did not echo the prompt's token log-probs (/completions with echo=True, "
                    f"logprobs=1) for {self.model_id}: query likelihood needs a server that does (vLLM serve), or "
                    "the hf/vllm backend")
            return np.asarray(picked, dtype=np.float32)

        return self._map(one, list(zip(prompts, continuations)), "continuation logprobs")

    def _check_single_tokens(self, cands: list[str]) -> None:
        """A candidate must be one token (checked with the local tokenizer or the server's /tokenize;
        without either it cannot be checked)."""
        for c in cands:
            if c in self._checked:
                continue
            if self.tokenizer is not None:
                n = self.count_tokens(c)
            else:
                ids = self.server_tokens.ids(c)
                if ids is None:
                    return
                n = len(ids)
            if n != 1:
                raise BackendError(f"{c!r} is {n} tokens for {self.model_id}; a candidate must be one token")
            self._checked.add(c)

    # --- generation ----------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams()) -> list[list[Completion]]:
        """``params.n`` completions per prompt: one request with ``n`` when the server honours it, in
        chunks of the server's limit (llama.cpp allows ``n`` up to its slot count), else one request
        per sample. A chunk starting at sample ``s`` gets seed ``seed + s``, so the samples depend on
        ``n`` and the server's limit only, never on earlier calls."""
        jobs = [self._request_for(p, "generate") for p in prompts]
        while True:
            step = self._n_max or params.n
            units = [(i, s, min(step, params.n - s)) for i in range(len(jobs)) for s in range(0, params.n, step)]
            try:
                results = self._map(lambda u: self._sample(jobs[u[0]], params, u[1], u[2]), units, "generate")
            except _TooManyChoices as e:
                self._n_max = e.limit
                log.info("%s takes n <= %d per request: sampling in chunks", self.base_url, e.limit)
                continue
            out: list[list[Completion]] = [[] for _ in jobs]
            for (i, _, _), comps in zip(units, results):
                out[i] += comps
            if step > 1 and any(len(o) < params.n for o in out):  # n ignored: one request per sample
                log.info("%s ignores n: one request per sample", self.base_url)
                self._n_max = 1
                continue
            return out

    def _sample(self, job: tuple[str, dict], params: SamplingParams, offset: int, n: int) -> list[Completion]:
        """``n`` completions of one prompt; the seed is shifted by ``offset`` for per-sample requests."""
        import openai

        endpoint, payload = job
        kw: dict[str, Any] = dict(model=self.model_id, max_tokens=params.max_new_tokens,
                                  temperature=params.temperature, n=n)
        if params.temperature > 0:
            kw["top_p"] = params.top_p
        if params.stop:
            kw["stop"] = list(params.stop)
        if params.seed is not None:
            kw["seed"] = params.seed + offset
        extra = dict(self.extra_body)
        if params.top_k > 0 and params.temperature > 0:
            extra["top_k"] = params.top_k
        if extra:
            kw["extra_body"] = extra
        try:
            if endpoint == "chat":
                resp = self._call(self.client.chat.completions.create, "chat completion", absent=n > 1, logprobs=True,
                                  top_logprobs=1, **kw, **payload)
            else:
                resp = self._call(self.client.completions.create, "completion", absent=n > 1, logprobs=1, **kw,
                                  **payload)
        except openai.APIStatusError as e:  # n > 1 refused (400): find the server's limit
            msg = _message(e)
            m = re.search(r"<=\s*(\d+)", msg)
            if e.status_code == 400 and re.search(r"\bn\b", msg):
                raise _TooManyChoices(max(1, min(int(m.group(1)) if m else 1, n - 1))) from e
            raise BackendError(f"completion: server {self.base_url} answered HTTP {e.status_code}: {_message(e)}") from e
        comps = []
        for ch in sorted(resp.model_dump()["choices"], key=lambda c: c.get("index") or 0):
            text = (ch["message"].get("content") if endpoint == "chat" else ch.get("text")) or ""
            steps = _parse_logprobs(ch.get("logprobs"))
            if not steps:
                with self._lock:
                    self.stats["generate_without_logprobs"] += 1
            comps.append(Completion(text, [s[1] for s in steps], [s[0] for s in steps],
                                    _finish(ch.get("finish_reason"))))
        return comps


class _TooManyChoices(Exception):
    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


def _finish(reason) -> str:
    return "length" if reason == "length" else "stop"


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        return str(err.get("message", err) if isinstance(err, dict) else err)
    return str(e)


def _parse_logprobs(lp) -> list[tuple[str, float, dict[str, float]]]:
    """``[(token, logprob, {alternative: logprob})]`` from either log-prob format:

    - chat (and llama.cpp's completions): ``{"content": [{"token", "logprob", "top_logprobs": [{"token",
      "logprob"}]}]}``;
    - legacy completions: ``{"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}]}``.

    Two alternatives that decode to the same text keep the larger log-prob.
    """
    if not lp:
        return []
    steps = []
    if lp.get("content") is not None:
        for item in lp["content"]:
            top: dict[str, float] = {}
            for alt in item.get("top_logprobs") or []:
                _keep_max(top, alt["token"], alt["logprob"])
            steps.append((item["token"], float(item["logprob"]), top))
        return steps
    tokens = lp.get("tokens") or []
    lps = lp.get("token_logprobs") or []
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    for tok, val, alts in zip(tokens, lps, tops):
        top = {}
        for t, v in (alts or {}).items():
            _keep_max(top, t, v)
        steps.append((tok, float(val) if val is not None else NEG_INF, top))
    return steps


def _keep_max(d: dict[str, float], key: str, value) -> None:
    v = float(value) if value is not None else NEG_INF
    if v > d.get(key, NEG_INF):
        d[key] = v
