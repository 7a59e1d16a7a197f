"""Response bodies of the mock server, byte for byte as vLLM (OpenAI API) and Triton send them.

Streams are precomputed per request as HTTP/1.1 chunked frames (``<hex len>\\r\\n<data>\\r\\n``),
one SSE event (``data: <json>\\n\\n``) per HTTP chunk, so each send is one ``transport.write``.

Shapes follow vLLM's pydantic models (``vllm/entrypoints/openai/protocol.py``):
chat chunks are dumped with ``exclude_unset=True`` (role chunk ``delta: {"role": "assistant",
"content": ""}``, content chunks ``delta: {"content": ...}``, ``stop_reason`` only on the finishing
chunk), completion chunks with ``exclude_unset=False`` (``stop_reason`` and ``"usage": null`` on
every chunk), the usage-only chunk (``choices: []``) with ``exclude_none=True``. Usage keys keep
vLLM's field order ``prompt_tokens, total_tokens, completion_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from backends.mock.tokens import WORDS, generated_text

_WORDS_JSON = tuple(json.dumps(w) for w in WORDS)
TERMINATOR = b"0\r\n\r\n"
DONE = b"data: [DONE]\n\n"


# Tail of a non-final single-token chunk after the request-specific prefix, per word.
_CHAT_MIDS = tuple(f'{w}}},"logprobs":null,"finish_reason":null}}]}}\n\n'.encode() for w in _WORDS_JSON)
_COMPLETION_MIDS = tuple(
    f'{w},"logprobs":null,"finish_reason":null,"stop_reason":null}}],"usage":null}}\n\n'.encode()
    for w in _WORDS_JSON
)


def _fast_chunks(pre: bytes, mids: tuple[bytes, ...], n: int) -> list[bytes]:
    """Framed chunks 0..n-1 of one token each, from a request prefix and per-word tails."""
    lp = len(pre)
    nw = len(mids)
    return [b"%x\r\n%b%b\r\n" % (lp + len(mids[i % nw]), pre, mids[i % nw]) for i in range(n)]


def frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def sse(obj_json: str) -> bytes:
    return b"data: " + obj_json.encode() + b"\n\n"


def usage_json(prompt: int, completion: int) -> str:
    return f'{{"prompt_tokens":{prompt},"total_tokens":{prompt + completion},"completion_tokens":{completion}}}'


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> bytes:
    """vLLM ``ErrorResponse``: ``{"error": {"message", "type", "param", "code"}}``."""
    return json.dumps({"error": {"message": message, "type": err_type, "param": param, "code": code}}, separators=(",", ":")).encode()


def chunk_texts(n_tokens: int, tokens_per_chunk: int) -> list[tuple[str, int]]:
    """(JSON-encoded text, tokens) of each content chunk: ``ceil(n / k)`` chunks of ``k`` tokens."""
    out = []
    for start in range(0, n_tokens, tokens_per_chunk):
        k = min(tokens_per_chunk, n_tokens - start)
        text = _WORDS_JSON[start % len(WORDS)] if k == 1 else json.dumps(generated_text(k, start))
        out.append((text, k))
    return out


@dataclass(frozen=True)
class StreamPlan:
    """Everything one streaming response writes, already framed.

    ``head`` goes out when the request is accepted (status line + headers, plus an early role
    chunk if asked); ``first`` is prepended to content chunk 0 (role chunk); ``chunks[i]`` is
    content chunk i; ``tail`` is appended to the last content chunk (usage chunk, [DONE],
    terminator). ``tokens[i]`` is the token count of chunk i.
    """

    head: bytes
    first: bytes
    chunks: list[bytes]
    tokens: list[int]
    tail: bytes

    def writes(self) -> list[bytes]:
        """The exact write of each content chunk (role prepended to the first, tail to the last)."""
        w = list(self.chunks)
        w[0] = self.first + w[0]
        w[-1] = w[-1] + self.tail
        return w


def _object_json(rid: str, obj: str, created: int, model: str) -> str:
    """The opening fields every chunk of one OpenAI stream shares, up to ``"choices"``."""
    return f'{{"id":"{rid}","object":"{obj}","created":{created},"model":{json.dumps(model)},'


def _content_chunks(
    prefix: bytes,
    mids: tuple[bytes, ...],
    n_tokens: int,
    tokens_per_chunk: int,
    continuous_usage: bool,
    event: Callable[[str, bool, int], str],
) -> tuple[list[bytes], list[int]]:
    """(framed content chunks, tokens of each). ``event(text, last, done)`` is the JSON of one
    chunk: ``text`` its JSON-encoded words, ``last`` whether it finishes the stream, ``done`` the
    tokens sent so far. With one token per chunk and no per-chunk usage, every chunk but the last
    is stamped from ``prefix`` and the precomputed ``mids`` (the fast path)."""
    if tokens_per_chunk == 1 and not continuous_usage and n_tokens > 1:
        done = start = n_tokens - 1
        chunks, tokens = _fast_chunks(prefix, mids, done), [1] * done
        parts = chunk_texts(1, 1)
    else:
        done = start = 0
        chunks, tokens = [], []
        parts = chunk_texts(n_tokens, tokens_per_chunk)
    for i, (text, k) in enumerate(parts):
        if start:
            text = _WORDS_JSON[start % len(WORDS)]
        done += k
        chunks.append(frame(sse(event(text, i == len(parts) - 1, done))))
        tokens.append(k)
    return chunks, tokens


def _openai_tail(obj_json: str, prompt_tokens: int, n_tokens: int, include_usage: bool) -> bytes:
    """What follows the last content chunk: the usage-only chunk (when asked), [DONE], terminator."""
    tail = b""
    if include_usage:
        tail += frame(sse(obj_json + f'"choices":[],"usage":{usage_json(prompt_tokens, n_tokens)}}}'))
    return tail + frame(DONE) + TERMINATOR


def chat_stream(
    head: bytes,
    rid: str,
    created: int,
    model: str,
    prompt_tokens: int,
    n_tokens: int,
    tokens_per_chunk: int,
    include_usage: bool,
    continuous_usage: bool,
    early_role: bool,
) -> StreamPlan:
    obj = _object_json(rid, "chat.completion.chunk", created, model)
    pre = obj + '"choices":[{"index":0,'
    role_usage = f',"usage":{usage_json(prompt_tokens, 0)}' if continuous_usage else ""
    role = frame(sse(pre + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]' + role_usage + "}"))

    def event(text: str, last: bool, done: int) -> str:
        fin = '"length","stop_reason":null' if last else "null"
        u = f',"usage":{usage_json(prompt_tokens, done)}' if continuous_usage else ""
        return pre + f'"delta":{{"content":{text}}},"logprobs":null,"finish_reason":{fin}}}]' + u + "}"

    chunks, tokens = _content_chunks(("data: " + pre + '"delta":{"content":').encode(), _CHAT_MIDS,
                                     n_tokens, tokens_per_chunk, continuous_usage, event)
    tail = _openai_tail(obj, prompt_tokens, n_tokens, include_usage)
    if early_role:
        return StreamPlan(head + role, b"", chunks, tokens, tail)
    return StreamPlan(head, role, chunks, tokens, tail)


def completion_stream(
    head: bytes,
    rid: str,
    created: int,
    model: str,
    prompt_tokens: int,
    n_tokens: int,
    tokens_per_chunk: int,
    include_usage: bool,
    continuous_usage: bool,
) -> StreamPlan:
    obj = _object_json(rid, "text_completion", created, model)
    pre = obj + '"choices":[{"index":0,"text":'

    def event(text: str, last: bool, done: int) -> str:
        fin = '"length"' if last else "null"
        u = usage_json(prompt_tokens, done) if continuous_usage else "null"
        return pre + f'{text},"logprobs":null,"finish_reason":{fin},"stop_reason":null}}],"usage":{u}}}'

    chunks, tokens = _content_chunks(("data: " + pre).encode(), _COMPLETION_MIDS,
                                     n_tokens, tokens_per_chunk, continuous_usage, event)
    return StreamPlan(head, b"", chunks, tokens, _openai_tail(obj, prompt_tokens, n_tokens, include_usage))


def triton_stream(
    head: bytes,
    model: str,
    prompt_tokens: int,
    n_tokens: int,
    tokens_per_chunk: int,
    num_input: bool,
    num_output: bool,
    error_after: int | None,
) -> StreamPlan:
    """Triton ``generate_stream``: one ``data: {...}`` event per response, no ``[DONE]``.

    With ``error_after=N`` the stream carries N responses and then ``data: {"error": ...}``
    (under HTTP 200, as Triton does)."""
    model_j = json.dumps(model)
    chunks: list[bytes] = []
    tokens: list[int] = []
    parts = chunk_texts(n_tokens, tokens_per_chunk)
    if error_after is not None:
        parts = parts[: max(error_after, 0)]
    for i, (text, k) in enumerate(parts):
        extra = ""
        if num_input and i == 0:
            extra += f',"num_input_tokens":{prompt_tokens}'
        if num_output:
            extra += f',"num_output_tokens":{k}'
        chunks.append(frame(sse(f'{{"model_name":{model_j},"model_version":"1","text_output":{text}{extra}}}')))
        tokens.append(k)
    tail = b""
    if error_after is not None:
        tail = frame(sse(json.dumps({"error": f"mock injected error after {len(parts)} responses"})))
    tail += TERMINATOR
    if not chunks:  # error before any response: the error event is the only write
        chunks, tokens, tail = [tail], [0], b""
    return StreamPlan(head, b"", chunks, tokens, tail)


def chat_response(rid: str, created: int, model: str, prompt_tokens: int, n_tokens: int) -> bytes:
    return json.dumps({
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant", "content": generated_text(n_tokens), "refusal": None,
                "annotations": None, "audio": None, "function_call": None, "tool_calls": [],
                "reasoning_content": None,
            },
            "logprobs": None,
            "finish_reason": "length",
            "stop_reason": None,
        }],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n_tokens,
                  "completion_tokens": n_tokens, "prompt_tokens_details": None},
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }, separators=(",", ":")).encode()


def completion_response(rid: str, created: int, model: str, prompt_tokens: int, n_tokens: int) -> bytes:
    return json.dumps({
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0, "text": generated_text(n_tokens), "logprobs": None,
            "finish_reason": "length", "stop_reason": None, "prompt_logprobs": None,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n_tokens,
                  "completion_tokens": n_tokens, "prompt_tokens_details": None},
        "kv_transfer_params": None,
    }, separators=(",", ":")).encode()


def triton_response(model: str, prompt_tokens: int, n_tokens: int, num_input: bool, num_output: bool) -> bytes:
    body: dict = {"model_name": model, "model_version": "1", "text_output": generated_text(n_tokens)}
    if num_input:
        body["num_input_tokens"] = prompt_tokens
    if num_output:
        body["num_output_tokens"] = n_tokens
    return json.dumps(body, separators=(",", ":")).encode()
