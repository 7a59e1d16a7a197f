"""Endpoint setup before a sweep: the target, its model, the workload of a point, the codec, and
a preflight request. Everything here talks to the server only through `backends`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from backends import control
from backends.http1 import parse_url
from backends.openai import OpenAICodec
from backends.records import RawStream
from profiler.errors import UserError
from profiler.https import HOSTED_BACKENDS, auth_headers, make_hosted_codec
from profiler.loadgen import open_connection
from profiler.spec import SweepSpec
from workloads.lengths import parse_length
from workloads.prompts import calibrate_prompt, load_tokenizer
from workloads.requests import RequestSpec, build_requests


class SweepError(UserError):
    """A sweep could not start or continue; the message is one line for the user."""


@dataclass
class Target:
    url: str
    model: str
    api: str = "chat"
    backend: str = "openai"
    api_key_env: str = ""
    tokenizer: str = ""
    extra_manifest: dict = field(default_factory=dict)
    ignore_eos: bool = True  # False for servers that reject the field (`transformers serve`)
    tls: object = None  # backends.tls.TLSSettings of an https:// url (profiler/https.py)


def resolve_model(target: Target) -> Target:
    """Check the endpoint speaks the API and serves the model; pick its model when none is given."""
    headers = auth_headers(target.backend, target.api_key_env)
    try:
        models = control.list_models(target.url, headers)
    except control.ControlError as e:
        raise SweepError(str(e)) from None
    if not models:
        raise SweepError(f"{target.url} serves no model")
    if not target.model:
        target.model = models[0]
    elif target.model not in models:
        raise SweepError(f"model {target.model!r} is not served at {target.url}; it serves: {', '.join(models)}")
    return target


def build_workload(spec: SweepSpec, target: Target, n: int, notices: list[str], seed: int) -> list[RequestSpec]:
    """`n` requests for one point. Each point gets its own seed, so its prompts are new to the
    server: a prefix cache (on by default in vLLM) cannot serve a later point's prefill from an
    earlier point's prompts."""
    in_len = parse_length(spec.input_tokens)
    out_len = parse_length(spec.output_tokens)
    tok = load_tokenizer(target.tokenizer) if target.tokenizer else None
    reqs = build_requests(n, in_len, out_len, seed, tokenizer=tok)
    if tok is None and target.backend == "openai":
        count_fn = control.tokenize_counter(target.url, target.model, target.api)
        if count_fn is None:
            notices.append("no local tokenizer and no /tokenize on the server: prompt lengths are approximate "
                           "(one common word per token); the server's usage gives the true count")
        else:
            rng = np.random.default_rng(seed + 7)
            calibrated = []
            for r in reqs:
                try:
                    prompt, count = calibrate_prompt(r.input_tokens, count_fn, rng)
                except control.ControlError as e:
                    raise SweepError(f"server at {target.url} stopped answering while prompts were built: {e}") from None
                calibrated.append(RequestSpec(r.index, prompt, count, r.max_tokens, count == r.input_tokens))
            reqs = calibrated
            exact = sum(r.input_exact for r in reqs)
            notices.append(f"prompt lengths calibrated with the server's /tokenize ({exact} of {len(reqs)} exact)")
    return reqs


def make_codec(target: Target):
    endpoint = parse_url(target.url, target.tls)
    if target.backend == "openai":
        return OpenAICodec(endpoint, target.model, api=target.api, api_key_env=target.api_key_env,
                           ignore_eos=target.ignore_eos)
    if target.backend in HOSTED_BACKENDS:
        return make_hosted_codec(endpoint, target)
    from backends import triton

    return triton.make_codec(endpoint, target)


def preflight(codec, requests: list[RequestSpec], timeout_s: float = 60.0) -> dict:
    """Short requests before the sweep, so a wrong endpoint fails fast with its reason.

    Server errors (HTTP 5xx) and rate limits (429) are retried twice and then tolerated: a failing server is something
    to measure. Anything else (not streaming, refused, 4xx) stops the sweep before it starts.
    """
    probe = codec.encode(replace(requests[0], max_tokens=2))
    for _ in range(3):
        conn = open_connection(codec, codec.endpoint, timeout_s)
        raw = RawStream()
        try:
            conn.stream(probe, raw, time.perf_counter_ns() + int(timeout_s * 1e9))
        finally:
            conn.close()
        parsed = codec.parse(raw)
        if not parsed.error or raw.status >= 500 or raw.status == 429:  # a rate limit is measured too
            if not parsed.error:
                return {"requests": 1, "max_tokens": 2, "usage_prompt_tokens": parsed.usage_prompt_tokens,
                        "usage_completion_tokens": parsed.usage_completion_tokens,
                        "note": "one short request before the first point; not in requests.parquet"}
            continue
        raise SweepError(f"test request to {codec.endpoint.host_header} failed: {parsed.error_detail or parsed.error}")
    return {"requests": 3, "max_tokens": 2, "note": "the server answered HTTP 5xx or 429 to all three; sweep goes on"}
