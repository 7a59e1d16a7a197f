"""OpenAI-compatible streaming (vLLM, SGLang, Triton's OpenAI frontend, TGI's Messages API).

`OpenAICodec.encode` serializes a request before the point starts; `parse` reads the recorded
stream after the request ended (the codec contract: backends/codec.py). Nothing here runs while
bytes arrive.

Content detection (what makes TTFT): an event carries generated content when its choice has
non-empty `text` (completions) or a delta with non-empty `content`, `reasoning_content`,
`reasoning` or any `tool_calls` (chat). Role-only preludes, empty deltas, usage-only events and
`[DONE]` do not count.

Reasoning models: an event whose delta carries only `reasoning_content` / `reasoning` (both
names are read: vLLM renamed the field, formats.md §5) is a reasoning event; the first event with
`content`, `tool_calls` or completions `text` is the first ANSWER event (`answer_ns`, giving the
time to first answer token), so TTFT (first content of any kind) is unchanged. Reasoning tokens
come from `usage.completion_tokens_details.reasoning_tokens` when the server reports it; the
reasoning events' own token counts (one per event when unknown) are kept beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from backends.errors import BackendError
from backends.http1 import Endpoint, encode_json_post
from backends.records import ERR_PROTOCOL, ERR_SERVER, ParsedStream, RawStream
from backends.sse import check_stream_end, json_events, stream_events
from workloads.requests import RequestSpec

PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@dataclass(frozen=True)
class OpenAICodec:
    endpoint: Endpoint
    model: str
    api: str = "chat"  # "chat" | "completions"
    ignore_eos: bool = True
    api_key_env: str = ""  # name of the environment variable holding the key; the key is never stored
    temperature: float | None = None
    continuous_usage: bool = False  # ask for usage on every chunk (exact tokens per chunk)

    def __post_init__(self) -> None:
        if self.api not in PATHS:
            raise BackendError(f"unknown api {self.api!r}: choose chat or completions")

    def _auth_headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, req: RequestSpec) -> dict:
        b: dict = {"model": self.model, "max_tokens": req.max_tokens, "stream": True,
                   "stream_options": {"include_usage": True}}
        if self.continuous_usage:
            b["stream_options"]["continuous_usage_stats"] = True
        if self.ignore_eos:
            b["ignore_eos"] = True
        if self.temperature is not None:
            b["temperature"] = self.temperature
        if self.api == "chat":
            turns = req.messages or (("user", req.prompt),)
            b["messages"] = [{"role": role, "content": text} for role, text in turns]
        else:
            b["prompt"] = "\n".join(t for _, t in req.messages) if req.messages else req.prompt
        return b

    def encode(self, req: RequestSpec) -> bytes:
        """The whole HTTP/1.1 request."""
        return encode_json_post(self.endpoint, PATHS[self.api], self.body(req), self._auth_headers())

    def parse(self, raw: RawStream) -> ParsedStream:
        return parse_openai_stream(raw)


def parse_openai_stream(raw: RawStream) -> ParsedStream:
    """Read a recorded OpenAI-style SSE stream (chat or completions)."""
    out = ParsedStream(error=raw.error, error_detail=raw.error_detail)
    read = stream_events(raw, out)
    if read is None:
        return out
    events, body = read
    texts: list[str] = []
    last_recv = -1
    in_recv = 0
    last_completion = 0
    done = False
    for ev, obj in json_events(events, out):
        out.event_ns.append(ev.t_ns)
        if obj is None:  # [DONE]
            done = True
            continue
        if "error" in obj and not obj.get("choices"):
            if not out.error:
                out.error, out.error_detail = ERR_SERVER, str(obj["error"])[:200]
            continue
        if not out.response_id:
            out.response_id = str(obj.get("id", ""))
        usage = obj.get("usage")
        tokens_here = -1
        if isinstance(usage, dict):
            ct = usage.get("completion_tokens")
            if isinstance(ct, int) and not isinstance(ct, bool):
                tokens_here = ct - last_completion
                last_completion = ct
                out.usage_completion_tokens = ct
            pt = usage.get("prompt_tokens")
            if isinstance(pt, int):
                out.usage_prompt_tokens = pt
            _read_usage_details(usage, out)
        try:
            piece, has_content, is_answer = _read_choices(obj.get("choices") or (), out)
        except (TypeError, AttributeError):  # JSON, but not shaped like a chunk
            if not out.error:
                out.error, out.error_detail = ERR_PROTOCOL, f"event is not a completion chunk: {ev.data[:80]!r}"
            continue
        if has_content:
            if is_answer and not out.answer_ns:
                out.answer_ns = ev.t_ns
            elif not is_answer:
                out.reasoning_chunk_tokens += tokens_here if tokens_here > 0 else 1
            out.content_ns.append(ev.t_ns)
            out.content_tokens.append(tokens_here)
            texts.append(piece)
            if ev.recv_index == last_recv:
                in_recv += 1
                if in_recv == 2:
                    out.bursts += 1
            else:
                last_recv, in_recv = ev.recv_index, 1
    out.text = "".join(texts)
    check_stream_end(raw, body, out, end_marker=done)
    return out


def _read_usage_details(usage: dict, out: ParsedStream) -> None:
    """Reasoning tokens and prompt tokens read from the API's cache, when the usage says."""
    details = usage.get("completion_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out.usage_reasoning_tokens = details["reasoning_tokens"]
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out.usage_cached_tokens = details["cached_tokens"]


def _read_choices(choices, out: ParsedStream) -> tuple[str, bool, bool]:
    """The generated text of one event's choices, whether they carry content (tool calls do,
    without text) and whether any of it is answer (not reasoning); a finish_reason is noted in
    `out`."""
    piece = ""
    has_content = is_answer = False
    if not isinstance(choices, list | tuple):
        raise TypeError("choices is not a list")
    for choice in choices:
        if choice.get("finish_reason"):
            out.finish_reason = str(choice["finish_reason"])
        if "delta" in choice:
            d = choice["delta"] or {}
            # a server sending both reasoning names (the alias period) sends the same text twice
            for key, v in (("content", d.get("content")), ("reasoning", d.get("reasoning") or d.get("reasoning_content"))):
                if v:
                    piece += v
                    has_content = True
                    is_answer = is_answer or key == "content"
            if d.get("tool_calls"):
                has_content = is_answer = True
        else:
            v = choice.get("text")
            if v:
                piece += v
                has_content = is_answer = True
    return piece, has_content, is_answer
