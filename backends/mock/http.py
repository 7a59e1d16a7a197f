"""Minimal HTTP/1.1 server side on ``asyncio.Protocol``: keep-alive, Content-Length request bodies,
one request at a time per connection (pipelined requests wait in the buffer until the current
response ends). Response headers imitate uvicorn, which serves vLLM.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Protocol as TypingProtocol

MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024 * 1024

REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
    413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
}

_date_cache: list = [0, b""]


def http_date() -> bytes:
    """RFC 7231 date, recomputed at most once a second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]


def response_head(status: int, content_type: bytes, length: int | None, close: bool,
                  server: bytes = b"uvicorn") -> bytes:
    """Status line and headers; ``length=None`` means ``Transfer-Encoding: chunked``."""
    parts = [b"HTTP/1.1 %d %s\r\ndate: %b\r\nserver: %b\r\n" % (status, REASONS.get(status, "OK").encode(),
                                                               http_date(), server)]
    if length is None:
        parts.append(b"content-type: %b\r\ntransfer-encoding: chunked\r\n" % content_type)
    else:
        parts.append(b"content-length: %d\r\ncontent-type: %b\r\n" % (length, content_type))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "received_ns")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool,
                 received_ns: int) -> None:
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.received_ns = received_ns


class Handler(TypingProtocol):
    def handle(self, conn: HttpConnection, req: Request) -> None: ...
    def connection_lost(self, conn: HttpConnection) -> None: ...


class HttpConnection(asyncio.Protocol):
    """One client connection. The handler either calls ``respond`` (complete response) or sets
    ``busy`` and later calls ``finish_response`` when its streamed response has ended."""

    def __init__(self, handler: Handler, low_latency_writes: bool) -> None:
        self.handler = handler
        self.low_latency_writes = low_latency_writes
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.keep_alive = True
        self.paused = False
        self.closed = False
        self.job = None  # the handler's in-flight job, if any
        self.parked = None  # a job waiting for resume_writing

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.low_latency_writes:
            # Pause as soon as anything is buffered in user space, so every logged send time is the
            # moment the bytes reached the kernel (exact-schedule ground truth).
            # (A TLS transport pauses at size >= high, a plain one at size > high: 1 and 0 mean the same.)
            tls = transport.get_extra_info("sslcontext") is not None
            self.transport.set_write_buffer_limits(high=1 if tls else 0)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.handler.connection_lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        job, self.parked = self.parked, None
        if job is not None:
            job.resume()

    # responses
    def respond(self, status: int, body: bytes = b"", content_type: bytes = b"application/json",
                server: bytes = b"uvicorn") -> None:
        close = not self.keep_alive
        self.transport.write(response_head(status, content_type, len(body), close, server) + body)
        self.finish_response()

    def finish_response(self) -> None:
        self.busy = False
        self.job = None
        if self.closed:
            return
        if not self.keep_alive:
            self.close()
        elif self.buf:
            asyncio.get_running_loop().call_soon(self._parse)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def _bad(self, status: int, message: str) -> None:
        self.keep_alive = False
        self.respond(status, b'{"detail":"%s"}' % message.encode())

    def _parse(self) -> None:
        if self.busy or self.closed:
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._bad(431, "request headers too large")
            return
        try:
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise ValueError(line)
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError("negative length")
        except ValueError:
            self._bad(400, "malformed request")
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._bad(411, "chunked request bodies are not supported; send Content-Length")
            return
        if length > MAX_BODY:
            self._bad(413, "request body too large")
            return
        total = end + 4 + length
        if len(buf) < total:
            return
        body = bytes(buf[end + 4:total])
        del buf[:total]
        conn_hdr = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = conn_hdr == "keep-alive"
        else:
            self.keep_alive = conn_hdr != "close"
        self.busy = True
        now = time.perf_counter_ns()
        self.handler.handle(self, Request(method, target, headers, body, self.keep_alive, now))
