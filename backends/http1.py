"""HTTP/1.1 as both transports speak it (backends/http_mux.py, backends/http_stream.py).

Requests are serialized once, before a point starts (`encode_request`, `encode_json_post`).
While bytes arrive, a transport finds the response head (`take_head`) and then asks `BodyEnd`,
one recv() at a time, whether the body is complete: chunked (the zero-size last chunk arrived),
Content-Length (that many bytes arrived) or delimited by the server closing the connection.
Everything else (chunked framing, SSE, JSON) is read after the request ended (backends/sse.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from backends.errors import BackendError
from backends.records import ERR_PROTOCOL, ERR_RESET, RawStream, http_error_class
from backends.tls import TLSSettings

RECV_SIZE = 1 << 16  # bytes asked of each recv()
MAX_HEAD = 65536  # a response head longer than this is an error, not something to wait for
# A response body longer than this is a protocol error (a stream of 32k tokens with logprobs is
# well under it): a hostile or broken server cannot make a worker keep bytes without bound.
MAX_BODY = 256 << 20
HEAD_END = b"\r\n\r\n"
LAST_CHUNK = b"\r\n0\r\n\r\n"  # the CRLF ending the last data chunk, then the zero-size chunk
EMPTY_CHUNKED = LAST_CHUNK[2:]  # a chunked body without data: only the zero-size chunk
_TAIL = len(LAST_CHUNK)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    base_path: str  # URL path prefix without trailing slash, e.g. "" or "/proxy"
    tls: TLSSettings | None = None  # https:// (backends/tls.py); None = plain http

    @property
    def host_header(self) -> str:
        if self.tls is not None and self.port == 443:
            return self.host
        return f"{self.host}:{self.port}"


def parse_url(url: str, tls: TLSSettings | None = None) -> Endpoint:
    """Split an http:// or https:// URL (https uses `tls`, default: verify with the system store);
    raises BackendError with a one-line reason."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https"):
        raise BackendError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: use http:// or https://")
    if not parts.hostname:
        raise BackendError(f"no host in URL {url!r}")
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError as e:
        raise BackendError(f"bad port in URL {url!r}") from e
    return Endpoint(parts.hostname, port, parts.path.rstrip("/"), (tls or TLSSettings()) if https else None)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a request may wait, by phase (seconds; 0 = no limit besides the request deadline).
    The total (--request-timeout) is each request's own deadline."""

    connect_s: float = 10.0  # for the TCP connection
    ttft_s: float = 60.0  # from the send to the first response body byte
    idle_s: float = 60.0  # between body bytes, once the first arrived

    @staticmethod
    def ns(seconds: float) -> int:
        return int(seconds * 1e9) if seconds > 0 else 1 << 62


# -- requests ----------------------------------------------------------------------------------
def encode_request(method: str, path: str, endpoint: Endpoint, body: bytes = b"",
                   headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request as the bytes to send (prepared once per request, before the point)."""
    lines = [f"{method} {endpoint.base_path}{path} HTTP/1.1", f"Host: {endpoint.host_header}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def encode_json_post(endpoint: Endpoint, path: str, obj: dict, extra_headers: dict[str, str] | None = None) -> bytes:
    """A POST of `obj` as compact JSON that asks for an event stream: what every HTTP codec sends."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **(extra_headers or {})}
    return encode_request("POST", path, endpoint, body, headers)


# -- responses ---------------------------------------------------------------------------------
class ResponseHead(NamedTuple):
    status: int  # 0: not an HTTP response
    chunked: bool
    length: int  # Content-Length; -1 when the body is chunked or ends when the connection closes
    close: bool  # the server closes the connection after this response


def parse_head(head: bytes) -> ResponseHead:
    """Status, framing and persistence of a response head (the bytes before its blank line)."""
    lines = head.split(b"\r\n")
    status_line = lines[0].split(None, 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return ResponseHead(0, False, -1, True)
    try:
        status = int(status_line[1])
    except ValueError:
        return ResponseHead(0, False, -1, True)
    chunked = False
    length = -1
    close = status_line[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = -1
        elif name == b"connection":
            close = value == b"close"
    if chunked:
        length = -1
    elif length < 0 and (status in (204, 304) or 100 <= status < 200):
        length = 0
    return ResponseHead(status, chunked, length, close)


class HeadError(Exception):
    """The bytes received cannot start an HTTP response; the message says why, in one line."""


def take_head(buf: bytes, raw: RawStream, t_ns: int) -> tuple[ResponseHead, bytes] | None:
    """Once `buf` (all bytes received so far) holds the whole response head: record it in `raw`
    (arrival `t_ns`, head bytes, status, framing) and return it with the body bytes that came
    with it. None while the head is still incomplete; HeadError when it is too long or not HTTP."""
    k = buf.find(HEAD_END)
    if k < 0:
        if len(buf) > MAX_HEAD:
            raise HeadError("response headers too long or not HTTP")
        return None
    head = buf[:k]
    raw.headers_ns = t_ns
    raw.header_bytes = head
    parsed = parse_head(head)
    raw.status, raw.chunked = parsed.status, parsed.chunked
    if parsed.status == 0:
        raise HeadError(f"not an HTTP response: {head[:60]!r}")
    return parsed, buf[k + len(HEAD_END) :]


class BodyEnd:
    """Tells, one recv() at a time, whether a response body is complete. Cheap enough for the hot
    path: no bytes are kept but the last few of a chunked body."""

    __slots__ = ("chunked", "until_close", "remaining", "tail", "done", "seen")

    def __init__(self, head: ResponseHead, first: bytes):
        """`first`: the body bytes that came with the head (maybe none); `done` says if that was all."""
        self.chunked = head.chunked
        self.until_close = not head.chunked and head.length < 0  # only the server's close ends it
        self.remaining = head.length  # Content-Length bytes still to come
        self.tail = b""  # chunked: the last len(LAST_CHUNK) bytes received (all of them while fewer)
        self.seen = 0  # body bytes so far: past MAX_BODY the body ends (`too_long`)
        self.done = self.feed(first)

    @property
    def too_long(self) -> bool:
        return self.seen > MAX_BODY

    def feed(self, data: bytes) -> bool:
        """Count `data`, the next bytes of the body; True when the body is complete (or too long)."""
        self.seen += len(data)
        if self.seen > MAX_BODY:
            return True
        if self.chunked:
            tail = data[-_TAIL:] if len(data) >= _TAIL else (self.tail + data)[-_TAIL:]
            self.tail = tail
            # A tail of 5 bytes holds the whole body: a body that is only the last chunk.
            return tail == LAST_CHUNK or tail == EMPTY_CHUNKED
        if self.until_close:
            return False
        self.remaining -= len(data)
        return self.remaining <= 0


def stale_keepalive(raw: RawStream, reused: bool, error: str | None = None) -> bool:
    """Whether a request that failed should be sent again on a fresh connection: it failed before
    any response byte (`header_bytes` holds a partial head when some came), on a connection kept
    alive from an earlier request (the server had closed the idle connection). Both transports
    resend a request once at most. Only a closed or reset connection is stale: a timeout is not
    (the server has the request). `error`: the failure, when not yet in `raw`."""
    return (error or raw.error) == ERR_RESET and reused and not raw.headers_ns and not raw.header_bytes


def mark_http_error(raw: RawStream) -> None:
    """A complete response with a non-2xx status is an http_4xx / http_429 / http_5xx error, with
    its Retry-After (when sent) and the start of its body."""
    if not 200 <= raw.status < 300 and not raw.error:
        raw.error = http_error_class(raw.status)
        retry = header_value(raw.header_bytes, "retry-after-ms")  # OpenAI's, in ms; else the standard one
        retry = f"{retry[:40]} ms" if retry else header_value(raw.header_bytes, "retry-after")[:40]
        retry = f" (Retry-After: {retry})" if retry else ""
        body = b"".join(raw.recv_bytes[:4])[:200].decode("utf-8", "replace")
        raw.error_detail = f"HTTP {raw.status}{retry}: {body}"


def mark_too_long(raw: RawStream, body: BodyEnd) -> bool:
    """A body past MAX_BODY ends the request with a protocol error; True when it did."""
    if body.too_long and not raw.error:
        raw.error, raw.error_detail = ERR_PROTOCOL, f"response body longer than {MAX_BODY >> 20} MiB"
    return body.too_long


def header_value(head: bytes, name: str) -> str:
    """A header's value from a recorded response head (post-hoc use only)."""
    want = name.lower().encode()
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == want:
            return v.strip().decode("latin-1")
    return ""
