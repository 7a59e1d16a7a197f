"""Triton's generate extension over HTTP: `POST /v2/models/{model}/generate_stream` (SSE).

One `data: {json}` event per model response; no `[DONE]`: the stream ends with the chunked body
(the empty final response of a decoupled model sends no event). Errors arrive as an event
`{"error": "..."}` under HTTP 200, so every event is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from backends.errors import BackendError
from backends.http1 import HTTP_ERRORS, Endpoint, encode_json_post
from backends.records import ParsedStream, RawStream
from backends.sse import check_stream_end, json_events, stream_events
from backends.triton.responses import Accumulator, as_int, as_text, short_error
from workloads.requests import RequestSpec

STYLES = ("vllm", "trtllm")
# Inputs of the vLLM backend that make it report token counts and only the generated text.
VLLM_FLAGS = ("exclude_input_in_output", "return_num_input_tokens", "return_num_output_tokens")


def request_fields(style: str, req: RequestSpec, flags: tuple[str, ...], min_tokens_input: str) -> dict:
    """The model inputs of one request, as generate_stream's top-level JSON fields."""
    if style == "vllm":
        sampling = {"max_tokens": req.max_tokens, "ignore_eos": True}
        body: dict = {"text_input": req.prompt, "stream": True,
                      "sampling_parameters": json.dumps(sampling, separators=(",", ":"))}
    else:
        body = {"text_input": req.prompt, "max_tokens": req.max_tokens, "stream": True}
        if min_tokens_input:
            # TensorRT-LLM has no ignore_eos: a minimum length equal to max_tokens does the same.
            body[min_tokens_input] = req.max_tokens
    for name in flags:
        body[name] = True
    return body


@dataclass(frozen=True)
class TritonCodecBase:
    """What both Triton codecs know: the server, the model and how its requests are shaped."""

    endpoint: Endpoint
    model: str
    style: str = "trtllm"  # "vllm" (sampling_parameters JSON) | "trtllm" (max_tokens input)
    flags: tuple[str, ...] = ()  # boolean inputs sent as true (see VLLM_FLAGS)
    min_tokens_input: str = ""  # trtllm: "min_tokens" / "min_length" when the model has one

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise BackendError(f"unknown Triton request style {self.style!r}: choose vllm or trtllm")


@dataclass(frozen=True)
class TritonHTTPCodec(TritonCodecBase):
    @property
    def path(self) -> str:
        return f"/v2/models/{self.model}/generate_stream"

    def encode(self, req: RequestSpec) -> bytes:
        """The whole HTTP/1.1 request."""
        fields = request_fields(self.style, req, self.flags, self.min_tokens_input)
        return encode_json_post(self.endpoint, self.path, fields)

    def parse(self, raw: RawStream) -> ParsedStream:
        return parse_generate_stream(raw)


def parse_generate_stream(raw: RawStream) -> ParsedStream:
    """Read a recorded generate_stream response."""
    out = ParsedStream(error=raw.error, error_detail=raw.error_detail)
    if raw.error in HTTP_ERRORS:
        body = b"".join(raw.recv_bytes)
        try:  # Triton answers {"error": "..."}: keep just the message
            out.error_detail = f"HTTP {raw.status}: {short_error(json.loads(body)['error'])}"
        except (ValueError, KeyError, TypeError):
            pass
        return out
    read = stream_events(raw, out, "response is not a stream (Content-Type {ctype})")
    if read is None:
        return out
    events, body = read
    acc = Accumulator(out)
    for ev, obj in json_events(events, out):
        if obj is None:  # Triton sends no [DONE]; tolerate one
            continue
        if "error" in obj:
            out.event_ns.append(ev.t_ns)
            acc.error(obj["error"])
            continue
        if not out.response_id and obj.get("id"):
            out.response_id = str(obj["id"])
        acc.response(ev.t_ns, ev.recv_index, as_text(obj.get("text_output")),
                     as_int(obj.get("num_output_tokens")), as_int(obj.get("num_input_tokens")),
                     as_text(obj.get("finish_reason")))
    acc.finish()
    check_stream_end(raw, body, out)
    return out
