"""The hosted APIs the mock imitates besides vLLM's OpenAI API: the Anthropic Messages stream
(`POST /v1/messages`) and the OpenAI Responses stream (`POST /v1/responses`), with the same
timing (performance model or exact schedule) as chat completions, plus what a hosted API does at
its door: an API key check (`--require-api-key-env NAME`: 401 without `x-api-key` or
`Authorization: Bearer` equal to that variable's value) and rate limits (`--rate-limit-rate F`:
that share of generation requests answered 429 with `retry-after` and the provider's rate-limit
headers). `--cached-tokens N` reports N prompt tokens (at most the prompt) as read from a cache.

Event shapes: ../shared/reference/formats.md §6 (Responses) and §7 (Anthropic).
"""

from __future__ import annotations

import json
import os
import random
import time
from functools import partial

from backends.errors import BackendError
from backends.mock.http import http_date, response_head
from backends.mock.payloads import TERMINATOR, StreamPlan, chunk_texts, frame
from backends.mock.tokens import PromptError, chat_prompt_tokens, count_words, generated_text

SSE_TYPE = b"text/event-stream; charset=utf-8"
OPEN_PATHS = ("/health", "/metrics", "/dcgm/metrics", "/mock/chunk_log", "/v2/health/ready", "/v2/health/live")
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses")


def add_args(p) -> None:
    g = p.add_argument_group("hosted-API imitation")
    g.add_argument("--require-api-key-env", help="answer 401 unless requests carry the key held by this variable")
    g.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of generation requests answered 429")
    g.add_argument("--cached-tokens", type=int, default=0, help="prompt tokens reported as cache reads")


def check_args(a) -> None:
    """One line (BackendError) for a bad hosted-imitation flag, before the server starts."""
    if not 0.0 <= a.rate_limit_rate <= 1.0:
        raise BackendError("--rate-limit-rate must be in [0, 1]")
    if a.cached_tokens < 0:
        raise BackendError("--cached-tokens must be >= 0")
    if a.require_api_key_env and not os.environ.get(a.require_api_key_env):
        raise BackendError(f"--require-api-key-env {a.require_api_key_env}: the variable is empty")


def install(app, a) -> None:
    """Add the hosted routes to `app` (a MockServerApp) and, when asked, the key and 429 gates."""
    key = os.environ.get(a.require_api_key_env, "") if a.require_api_key_env else ""
    app.cached_tokens = a.cached_tokens
    app.routes[("POST", "/v1/messages")] = partial(messages, app)
    app.routes[("POST", "/v1/responses")] = partial(responses, app)
    rng = random.Random(a.seed + 429)
    for route, fn in list(app.routes.items()):
        if route[1] in OPEN_PATHS:
            continue
        limit = a.rate_limit_rate if route[1] in GENERATION_PATHS else 0.0
        if key or limit:
            app.routes[route] = partial(_gate, fn, key, limit, rng)


def _gate(fn, key: str, limit: float, rng: random.Random, conn, req) -> None:
    if key and not _has_key(req.headers, key):
        _reply(conn, 401, b"Unauthorized", [], b'{"type":"error","error":{"type":"authentication_error",'
                                                 b'"message":"invalid x-api-key"}}')
        return
    if limit and rng.random() < limit:
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        headers = [(b"retry-after", b"1"), (b"x-ratelimit-limit-requests", b"60"),
                   (b"x-ratelimit-remaining-requests", b"0"), (b"x-ratelimit-reset-requests", b"1s"),
                   (b"anthropic-ratelimit-requests-remaining", b"0"),
                   (b"anthropic-ratelimit-requests-reset", reset.encode())]
        _reply(conn, 429, b"Too Many Requests", headers,
               b'{"type":"error","error":{"type":"rate_limit_error","message":"mock rate limit (--rate-limit-rate)"}}')
        return
    fn(conn, req)


def _has_key(headers: dict[str, str], key: str) -> bool:
    return headers.get("x-api-key") == key or headers.get("authorization") == f"Bearer {key}"


def _reply(conn, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    close = not conn.keep_alive
    lines = [b"HTTP/1.1 %d %b" % (status, reason), b"date: " + http_date(), b"server: uvicorn",
             b"content-length: %d" % len(body), b"content-type: application/json"]
    lines += [k + b": " + v for k, v in headers]
    if close:
        lines.append(b"connection: close")
    conn.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    conn.finish_response()


def _event(name: str, obj: dict) -> bytes:
    return frame(b"event: %b\ndata: %b\n\n" % (name.encode(), json.dumps(obj, separators=(",", ":")).encode()))


def _request(app, req, token_keys: tuple[str, ...]):
    """(JSON body, prompt tokens, output tokens) of a hosted-API request, or raises BadRequest."""
    from backends.mock.server import openai_error

    obj = app._json(req)
    app._check_model(obj)
    try:
        if "messages" in obj:
            prompt = chat_prompt_tokens(obj["messages"])
            if isinstance(obj.get("system"), str):
                prompt += count_words(obj["system"])
        elif isinstance(obj.get("input"), str):
            prompt = count_words(obj["input"])
        else:
            prompt = chat_prompt_tokens(obj.get("input"))
    except PromptError as e:
        raise openai_error(str(e)) from None
    if not obj.get("stream"):
        raise openai_error("the mock serves hosted APIs streaming only: send \"stream\": true")
    return obj, prompt, app._max_tokens(obj, token_keys, prompt, openai_error)


def _start(app, conn, req, rid: str, plan: StreamPlan, prompt: int, n_tokens: int) -> None:
    from backends.mock.server import openai_error

    fail, cut_after = app._draw_faults(len(plan.chunks), True)
    if fail:
        raise openai_error("mock injected failure (--fail-rate)", "InternalServerError", 500)
    app._start_stream(conn, req, rid, plan, prompt, n_tokens, cut_after)


# -- Anthropic Messages ------------------------------------------------------------------------
def messages(app, conn, req) -> None:
    obj, prompt, n_tokens = _request(app, req, ("max_tokens",))
    thinking = isinstance(obj.get("thinking"), dict) and obj["thinking"].get("type") == "enabled"
    app.next_id += 1
    rid = f"msg_{app.next_id:06d}"
    head = response_head(200, SSE_TYPE, None, not conn.keep_alive)
    cached = min(app.cached_tokens, prompt)
    plan = anthropic_stream(head, rid, app.cfg.model, prompt, cached, n_tokens, app.cfg.tokens_per_chunk, thinking)
    _start(app, conn, req, rid, plan, prompt, n_tokens)


def anthropic_stream(head: bytes, rid: str, model: str, prompt: int, cached: int, n_tokens: int, k: int,
                     thinking: bool) -> StreamPlan:
    """message_start, one content_block_delta per chunk (the first half thinking when asked),
    then message_delta with the cumulative output tokens and message_stop."""
    usage = {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": cached, "output_tokens": 1}
    start = {"type": "message_start", "message": {"id": rid, "type": "message", "role": "assistant", "model": model,
                                                  "content": [], "stop_reason": None, "stop_sequence": None,
                                                  "usage": usage}}
    parts = chunk_texts(n_tokens, k)
    n_think = len(parts) // 2 if thinking else 0
    block = {"type": "thinking", "thinking": ""} if n_think else {"type": "text", "text": ""}
    first = (_event("message_start", start) + _event("content_block_start", {
        "type": "content_block_start", "index": 0, "content_block": block}) + _event("ping", {"type": "ping"}))
    chunks, tokens = [], []
    for i, (text_json, n) in enumerate(parts):
        text = json.loads(text_json)
        pre = b""
        if n_think and i == n_think:
            pre = (_event("content_block_stop", {"type": "content_block_stop", "index": 0})
                   + _event("content_block_start", {"type": "content_block_start", "index": 1,
                                                    "content_block": {"type": "text", "text": ""}}))
        delta = {"type": "thinking_delta", "thinking": text} if i < n_think else {"type": "text_delta", "text": text}
        index = 1 if n_think and i >= n_think else 0
        chunks.append(pre + _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                            "delta": delta}))
        tokens.append(n)
    tail = (_event("content_block_stop", {"type": "content_block_stop", "index": 1 if n_think else 0})
            + _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens",
                                                                          "stop_sequence": None},
                                       "usage": {"output_tokens": n_tokens}})
            + _event("message_stop", {"type": "message_stop"}) + TERMINATOR)
    return StreamPlan(head, first, chunks, tokens, tail)


# -- OpenAI Responses --------------------------------------------------------------------------
def responses(app, conn, req) -> None:
    obj, prompt, n_tokens = _request(app, req, ("max_output_tokens",))
    app.next_id += 1
    rid = f"resp_{app.next_id:06d}"
    head = response_head(200, SSE_TYPE, None, not conn.keep_alive)
    cached = min(app.cached_tokens, prompt)
    plan = responses_stream(head, rid, app.cfg.model, prompt, cached, n_tokens, app.cfg.tokens_per_chunk)
    _start(app, conn, req, rid, plan, prompt, n_tokens)


def responses_stream(head: bytes, rid: str, model: str, prompt: int, cached: int, n_tokens: int,
                     k: int) -> StreamPlan:
    """created / in_progress / output item and part added, one output_text.delta per chunk, then
    the done events and `response.incomplete` (max_output_tokens reached) with the usage."""
    seq = iter(range(1 << 30))
    item = f"msg_{rid}"
    resp = {"id": rid, "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "model": model, "output": []}

    def ev(kind: str, **fields) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(seq), **fields})

    first = (ev("response.created", response=resp) + ev("response.in_progress", response=resp)
             + ev("response.output_item.added", output_index=0,
                  item={"id": item, "type": "message", "status": "in_progress", "role": "assistant", "content": []})
             + ev("response.content_part.added", item_id=item, output_index=0, content_index=0,
                  part={"type": "output_text", "text": "", "annotations": []}))
    chunks, tokens = [], []
    for text_json, n in chunk_texts(n_tokens, k):
        chunks.append(ev("response.output_text.delta", item_id=item, output_index=0, content_index=0,
                         delta=json.loads(text_json), logprobs=[]))
        tokens.append(n)
    text = generated_text(n_tokens)
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": n_tokens,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + n_tokens}
    final = {**resp, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": usage}
    part = {"type": "output_text", "text": text, "annotations": []}
    tail = (ev("response.output_text.done", item_id=item, output_index=0, content_index=0, text=text)
            + ev("response.content_part.done", item_id=item, output_index=0, content_index=0, part=part)
            + ev("response.output_item.done", output_index=0,
                 item={"id": item, "type": "message", "status": "incomplete", "role": "assistant", "content": [part]})
            + ev("response.incomplete", response=final) + TERMINATOR)
    return StreamPlan(head, first, chunks, tokens, tail)

