"""The OpenAI Responses API (`POST /v1/responses`, `stream: true`).

Request: `Authorization: Bearer` (from `--api-key-env`), a JSON body with `model`, `input` (the
prompt), `max_output_tokens`, `stream`. Events are dispatched on `data.type`
(../shared/reference/formats.md §6):

- content: `response.output_text.delta`, `response.reasoning_text.delta` and
  `response.reasoning_summary_text.delta` (reasoning), `response.refusal.delta`,
  `response.function_call_arguments.delta` (tool calls) — each event's `delta` is its text;
- `response.created` gives the response id;
- terminal `response.completed` / `response.incomplete` / `response.failed` carry
  `response.usage`: `input_tokens` (prompt, cached included), `input_tokens_details.cached_tokens`,
  `output_tokens`; they end the stream. `incomplete` for `max_output_tokens` is finish reason
  `length` (as OpenAI chat says it), `completed` is `stop`; `failed` and `error` events are server
  errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.content import Contents, api_key, as_int
from backends.http1 import Endpoint, encode_json_post
from backends.records import ERR_SERVER, ParsedStream, RawStream
from backends.sse import check_stream_end, json_events, stream_events
from workloads.requests import RequestSpec

PATH = "/v1/responses"
CONTENT_EVENTS = frozenset(("response.output_text.delta", "response.reasoning_text.delta",
                            "response.reasoning_summary_text.delta", "response.refusal.delta",
                            "response.function_call_arguments.delta"))
TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def auth_headers(api_key_env: str) -> dict[str, str]:
    key = api_key(api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


@dataclass(frozen=True)
class ResponsesCodec:
    endpoint: Endpoint
    model: str
    api_key_env: str = ""
    temperature: float | None = None

    def body(self, req: RequestSpec) -> dict:
        b: dict = {"model": self.model, "input": req.prompt, "max_output_tokens": req.max_tokens, "stream": True}
        if self.temperature is not None:
            b["temperature"] = self.temperature
        return b

    def encode(self, req: RequestSpec) -> bytes:
        return encode_json_post(self.endpoint, PATH, self.body(req), auth_headers(self.api_key_env))

    def parse(self, raw: RawStream) -> ParsedStream:
        return parse_responses_stream(raw)


def parse_responses_stream(raw: RawStream) -> ParsedStream:
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
        if kind in CONTENT_EVENTS:
            piece = obj.get("delta")
            if isinstance(piece, str) and piece:
                contents.add(ev, piece)
        elif kind == "response.created":
            out.response_id = str((obj.get("response") or {}).get("id", ""))
        elif kind in TERMINAL_EVENTS:
            done = True
            _terminal(kind, obj.get("response") or {}, out)
        elif kind == "error" and not out.error:
            out.error, out.error_detail = ERR_SERVER, f"{obj.get('code') or 'error'}: {obj.get('message', '')}"[:200]
    contents.finish()
    check_stream_end(raw, body, out, end_marker=done)
    return out


def _terminal(kind: str, resp: dict, out: ParsedStream) -> None:
    if not out.response_id:
        out.response_id = str(resp.get("id", ""))
    usage = resp.get("usage")
    if isinstance(usage, dict):
        out.usage_prompt_tokens = as_int(usage.get("input_tokens"))
        out.usage_completion_tokens = as_int(usage.get("output_tokens"))
        out.usage_cached_tokens = as_int((usage.get("input_tokens_details") or {}).get("cached_tokens"))
    if kind == "response.completed":
        out.finish_reason = "stop"
    elif kind == "response.incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason", "incomplete")
        out.finish_reason = INCOMPLETE_REASONS.get(reason, str(reason))
    elif not out.error:
        err = resp.get("error") or {}
        out.error, out.error_detail = ERR_SERVER, f"{err.get('code') or 'failed'}: {err.get('message', '')}"[:200]
