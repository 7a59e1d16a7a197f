"""The Anthropic Messages API (`POST /v1/messages`, `stream: true`).

Request: `x-api-key` (from the variable named by `--api-key-env`), `anthropic-version`, a JSON
body with `model`, `max_tokens`, `messages`, `stream`. The stream's events (each `event:` name
equals its `data.type`; ../shared/reference/formats.md §7):

- `message_start`: the response id and the prompt usage: prompt tokens =
  `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` (what the OpenAI API calls
  `prompt_tokens`), of which `cache_read_input_tokens` were cached;
- `content_block_delta`: generated content: `text_delta`, `thinking_delta` (reasoning, counted like
  vLLM's `reasoning` field), `input_json_delta` (tool input, like OpenAI's `tool_calls`);
  `signature_delta` carries no content;
- `message_delta`: `stop_reason` and `usage.output_tokens`, which is cumulative: the last value is
  the completion's tokens (never summed);
- `message_stop` ends the stream; `ping` is ignored; `error` is a server error inside the stream.

Stop reasons map onto OpenAI's finish reasons (`max_tokens` → `length`, `end_turn` → `stop`, …)
so records of both APIs compare.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.content import Contents, api_key, as_int
from backends.http1 import Endpoint, encode_json_post
from backends.records import ERR_SERVER, ParsedStream, RawStream
from backends.sse import check_stream_end, json_events, stream_events
from workloads.requests import RequestSpec

PATH = "/v1/messages"
VERSION = "2023-06-01"
STOP_REASONS = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls",
                "refusal": "content_filter"}
_DELTA_TEXT = ("text", "thinking", "partial_json")  # text_delta, thinking_delta, input_json_delta


def auth_headers(api_key_env: str) -> dict[str, str]:
    key = api_key(api_key_env)
    return {"x-api-key": key, "anthropic-version": VERSION} if key else {"anthropic-version": VERSION}


@dataclass(frozen=True)
class AnthropicCodec:
    endpoint: Endpoint
    model: str
    api_key_env: str = ""
    temperature: float | None = None
    thinking_budget: int = 0  # > 0: ask for extended thinking with this budget

    def body(self, req: RequestSpec) -> dict:
        b: dict = {"model": self.model, "max_tokens": req.max_tokens, "stream": True,
                   "messages": [{"role": "user", "content": req.prompt}]}
        if self.temperature is not None:
            b["temperature"] = self.temperature
        if self.thinking_budget > 0:
            b["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        return b

    def encode(self, req: RequestSpec) -> bytes:
        return encode_json_post(self.endpoint, PATH, self.body(req), auth_headers(self.api_key_env))

    def parse(self, raw: RawStream) -> ParsedStream:
        return parse_anthropic_stream(raw)


def parse_anthropic_stream(raw: RawStream) -> ParsedStream:
    out = ParsedStream(error=raw.error, error_detail=raw.error_detail)
    read = stream_events(raw, out)
    if read is None:
        return out
    events, body = read
    contents = Contents(out)
    done = False
    for ev, obj in json_events(events, out):
        out.event_ns.append(ev.t_ns)
        kind = obj.get("type") if obj is not None else None
        if kind == "content_block_delta":
            d = obj.get("delta") or {}
            piece = next((d[k] for k in _DELTA_TEXT if isinstance(d.get(k), str) and d[k]), "")
            if piece:
                contents.add(ev, piece)
        elif kind == "message_start":
            msg = obj.get("message") or {}
            out.response_id = str(msg.get("id", ""))
            _prompt_usage(msg.get("usage"), out)
        elif kind == "message_delta":
            _delta(obj, out)
        elif kind == "message_stop":
            done = True
        elif kind == "error" and not out.error:
            err = obj.get("error") or {}
            out.error, out.error_detail = ERR_SERVER, f"{err.get('type', 'error')}: {err.get('message', '')}"[:200]
    contents.finish()
    check_stream_end(raw, body, out, end_marker=done)
    return out


def _prompt_usage(usage, out: ParsedStream) -> None:
    if not isinstance(usage, dict):
        return
    parts = [as_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    if parts[0] is not None:
        out.usage_prompt_tokens = sum(p for p in parts if p is not None)
    if parts[2] is not None:
        out.usage_cached_tokens = parts[2]


def _delta(obj: dict, out: ParsedStream) -> None:
    reason = (obj.get("delta") or {}).get("stop_reason")
    if reason:
        out.finish_reason = STOP_REASONS.get(reason, str(reason))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        ot = as_int(usage.get("output_tokens"))
        if ot is not None:
            out.usage_completion_tokens = ot  # cumulative: the last one is the total
        if as_int(usage.get("input_tokens")) is not None:
            _prompt_usage(usage, out)
