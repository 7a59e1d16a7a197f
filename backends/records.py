"""Records a request leaves behind: the raw stream the hot path fills, and the parsed record.

All times are `time.perf_counter_ns()` (CLOCK_MONOTONIC), shared by every process on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Error classes, kept short so they group well in tables.
ERR_CONNECT = "connect"  # could not connect / connection refused
ERR_TIMEOUT = "timeout"  # no byte for `read_timeout`, or the request exceeded its deadline
ERR_CLOSED = "closed"  # server closed the connection before the response ended
ERR_HTTP = "http"  # non-2xx status (the status is kept in `status`)
ERR_PROTOCOL = "protocol"  # bytes that are not HTTP / SSE as expected
ERR_SERVER = "server_error"  # an error object inside a 200 stream (Triton does this)
ERR_CANCELLED = "cancelled"  # stopped by the end of the point (neither good nor bad)
ERR_RATE_LIMITED = "rate_limited"  # HTTP 429 (the Retry-After is in error_detail); never retried


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
    usage_cached_tokens: int = -1  # prompt tokens served from the API's cache; -1 when not reported


REQUEST_COLUMNS = list(RequestRecord.__dataclass_fields__)
