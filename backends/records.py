"""Records a request leaves behind: the raw stream the hot path fills, and the parsed record.

All times are `time.perf_counter_ns()` (CLOCK_MONOTONIC), shared by every process on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Error classes: every failed request has exactly one, its detail kept in `error_detail`.
ERR_CONNECT = "connect"  # the connection was refused or could not be made
ERR_TIMEOUT_CONNECT = "timeout_connect"  # no connection within --connect-timeout
ERR_TIMEOUT_TTFT = "timeout_ttft"  # no response body byte within --ttft-timeout of the send
ERR_TIMEOUT_IDLE = "timeout_idle"  # a gap between body bytes longer than --idle-timeout
ERR_TIMEOUT_TOTAL = "timeout_total"  # the request outlived --request-timeout
ERR_HTTP_4XX = "http_4xx"  # a non-2xx status below 500 other than 429 (the status is kept in `status`)
ERR_HTTP_429 = "http_429"  # rate limited (Retry-After, when sent, is in the detail)
ERR_HTTP_5XX = "http_5xx"
ERR_RESET = "reset"  # the server reset or closed the connection before the response ended
ERR_PROTOCOL = "protocol"  # bytes that are not HTTP / SSE / JSON as expected
ERR_SERVER = "server_error"  # an error object inside a 200 stream
ERR_CANCELLED = "cancelled"  # stopped by the end of the point or the sweep (neither good nor bad)

ERROR_CLASSES = (ERR_CONNECT, ERR_TIMEOUT_CONNECT, ERR_TIMEOUT_TTFT, ERR_TIMEOUT_IDLE, ERR_TIMEOUT_TOTAL,
                 ERR_HTTP_4XX, ERR_HTTP_429, ERR_HTTP_5XX, ERR_RESET, ERR_PROTOCOL, ERR_SERVER)
HTTP_ERRORS = frozenset((ERR_HTTP_4XX, ERR_HTTP_429, ERR_HTTP_5XX))
CONNECT_ERRORS = frozenset((ERR_CONNECT, ERR_TIMEOUT_CONNECT))  # the server is not reachable at all

# Names older run folders used; `error_class` maps them (their error_kinds column keeps them as
# recorded, so their points.csv is reproduced unchanged).
ERR_TIMEOUT = ERR_TIMEOUT_TOTAL  # kept for callers: a deadline is a total timeout
ERR_CLOSED = ERR_RESET
LEGACY_TIMEOUT, LEGACY_CLOSED, LEGACY_HTTP = "timeout", "closed", "http"


def http_error_class(status: int) -> str:
    """The class of a complete response with a non-2xx status."""
    if status == 429:
        return ERR_HTTP_429
    return ERR_HTTP_5XX if status >= 500 else ERR_HTTP_4XX


def error_class(error: str, status: int = 0, detail: str = "") -> str:
    """The class of a recorded error, old names included ("" stays "": a success)."""
    if error == LEGACY_HTTP:
        return http_error_class(status)
    if error == LEGACY_CLOSED:
        return ERR_RESET
    if error == LEGACY_TIMEOUT:
        return ERR_TIMEOUT_TOTAL if "deadline" in detail else ERR_TIMEOUT_IDLE
    return error


@dataclass(slots=True)
class RawStream:
    """What the hot path records for one request: nothing is parsed while bytes arrive."""

    send_ns: int = 0  # just before the request bytes were written
    headers_ns: int = 0  # the recv() that completed the response headers
    end_ns: int = 0  # the recv() that completed the response (or the failure)
    status: int = 0
    chunked: bool = False
    header_bytes: bytes = b""
    recv_ns: list[int] = field(default_factory=list)  # one per recv() of body bytes
    recv_bytes: list[bytes] = field(default_factory=list)
    error: str = ""
    error_detail: str = ""


@dataclass(slots=True)
class ParsedStream:
    """A codec's reading of a RawStream, after the request ended."""

    event_ns: list[int] = field(default_factory=list)  # arrival of every data event
    content_ns: list[int] = field(default_factory=list)  # arrival of events carrying generated text
    content_tokens: list[int] = field(default_factory=list)  # tokens per content event; -1 unknown
    text: str = ""
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    response_id: str = ""
    finish_reason: str = ""
    bursts: int = 0  # recv() calls that delivered more than one content event
    error: str = ""
    error_detail: str = ""
    answer_ns: int = 0  # first event carrying answer content (not reasoning); 0 if none
    reasoning_chunk_tokens: int = 0  # tokens of reasoning-only events (1 per event when not reported)
    usage_reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens
    usage_cached_tokens: int | None = None  # prompt tokens the API reports as read from its cache


@dataclass(slots=True)
class RequestRecord:
    """One row of requests.parquet."""

    point: int
    request: int  # index within the point, in the order the requests were built
    worker: int
    scheduled_ns: int  # when the load generator meant to send it (open loop); == send_ns closed loop
    send_ns: int
    headers_ns: int
    first_event_ns: int  # first SSE data event of any kind (role-only included); 0 if none
    first_content_ns: int  # first event carrying generated content; 0 if none
    last_content_ns: int
    end_ns: int
    status: int
    error: str  # "" when the request succeeded
    error_detail: str
    input_tokens: int  # what the workload asked for
    input_exact: bool
    max_tokens: int
    usage_prompt_tokens: int  # -1 when the server did not report usage
    usage_completion_tokens: int
    client_output_tokens: int  # client tokenizer count of the whole text; -1 without a tokenizer
    n_events: int
    n_content_chunks: int
    bursts: int
    response_id: str
    output_chars: int
    # reasoning models (backends/openai.py): first_content_ns stays the first content of any kind
    first_answer_ns: int = 0  # first event carrying answer content (after the reasoning); 0 if none
    reasoning_tokens: int = -1  # usage.completion_tokens_details.reasoning_tokens; -1 when not reported
    reasoning_chunk_tokens: int = 0  # tokens of the reasoning-only events (1 per event when not reported)
    usage_cached_tokens: int = -1  # prompt tokens served from the API's cache; -1 when not reported
    node: str = ""  # the Ray node that sent it (profiler/raypool.py); "" for a local load generator


REQUEST_COLUMNS = list(RequestRecord.__dataclass_fields__)
