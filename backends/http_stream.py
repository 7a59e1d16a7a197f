"""The load generator's hot path: a lean HTTP/1.1 streaming reader on a blocking socket.

Why not aiohttp/httpx: per received chunk they build objects, decode and await, and one client
core then saturates at a tenth of the chunk rate a GPU server produces; the clock ends up
measuring the client's own queue (see benchmarks/truth/ for figures). Here each recv() costs one
timestamp and two list appends; framing and SSE parsing happen after the request (backends/sse.py).

One `Connection` per stream thread, kept alive across requests.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from backends.records import ERR_CLOSED, ERR_CONNECT, ERR_HTTP, ERR_PROTOCOL, ERR_TIMEOUT, RawStream

RECV_SIZE = 1 << 16
_LAST_CHUNK = b"\r\n0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    base_path: str  # URL path prefix without trailing slash, e.g. "" or "/proxy"

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Split an http:// URL; raises ValueError with a one-line reason."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http":
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: use http://host:port")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    try:
        port = parts.port or 80
    except ValueError as e:
        raise ValueError(f"bad port in URL {url!r}") from e
    return Endpoint(parts.hostname, port, parts.path.rstrip("/"))


class Connection:
    """A keep-alive connection to one endpoint, reopened when the server closes it."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float = 10.0, read_timeout: float = 60.0):
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def open(self) -> socket.socket:
        s = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.connect_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.read_timeout)
        self.sock = s
        return s

    def stream(self, request: bytes, raw: RawStream, deadline_ns: int) -> None:
        """Send `request`, record the response into `raw`. Never raises for network faults."""
        perf = time.perf_counter_ns
        for attempt in (0, 1):
            reused = self.sock is not None
            try:
                sock = self.sock or self.open()
            except OSError as e:
                raw.send_ns = raw.end_ns = perf()
                raw.error, raw.error_detail = ERR_CONNECT, f"{type(e).__name__}: {e}"
                return
            keep = False
            try:
                raw.send_ns = perf()
                sock.sendall(request)
                keep = self._read_response(sock, raw, deadline_ns, perf)
            except TimeoutError:
                raw.end_ns = perf()
                raw.error, raw.error_detail = ERR_TIMEOUT, f"no data for {self.read_timeout:g} s"
            except OSError as e:
                raw.end_ns = perf()
                raw.error = ERR_CLOSED if raw.headers_ns else ERR_CONNECT
                raw.error_detail = f"{type(e).__name__}: {e}"
            if not keep:
                self.close()
            if attempt == 0 and reused and raw.error and not raw.headers_ns:
                # The server had closed this idle keep-alive connection: retry once on a fresh one.
                raw.error = raw.error_detail = ""
                raw.recv_ns.clear()
                raw.recv_bytes.clear()
                continue
            return

    def _read_response(self, sock: socket.socket, raw: RawStream, deadline_ns: int, perf) -> bool:
        """Returns True when the connection can be reused."""
        recv = sock.recv
        buf = b""
        while True:
            data = recv(RECV_SIZE)
            t = perf()
            if not data:
                raw.end_ns = t
                raw.error, raw.error_detail = ERR_CLOSED, "connection closed before response headers"
                return False
            buf += data
            k = buf.find(b"\r\n\r\n")
            if k >= 0:
                break
            if len(buf) > 65536:
                raw.end_ns = t
                raw.error, raw.error_detail = ERR_PROTOCOL, "response headers too long or not HTTP"
                return False
        raw.headers_ns = t
        head = buf[:k]
        raw.header_bytes = head
        status, chunked, length, close = _parse_head(head)
        raw.status = status
        raw.chunked = chunked
        if status == 0:
            raw.end_ns = t
            raw.error, raw.error_detail = ERR_PROTOCOL, f"not an HTTP response: {head[:60]!r}"
            return False
        times = raw.recv_ns
        pieces = raw.recv_bytes
        body = buf[k + 4 :]
        if body:
            times.append(t)
            pieces.append(body)

        if chunked:
            tail = body[-7:]
            done = tail.endswith(_LAST_CHUNK) or body == b"0\r\n\r\n"
            while not done:
                data = recv(RECV_SIZE)
                t = perf()
                if not data:
                    raw.end_ns = t
                    raw.error, raw.error_detail = ERR_CLOSED, "connection closed mid-stream"
                    return False
                times.append(t)
                pieces.append(data)
                if len(data) >= 7:
                    done = data[-7:] == _LAST_CHUNK
                    tail = data[-7:]
                else:
                    tail = (tail + data)[-7:]
                    done = tail == _LAST_CHUNK
                if t > deadline_ns:
                    raw.end_ns = t
                    raw.error, raw.error_detail = ERR_TIMEOUT, "request deadline passed"
                    return False
        elif length >= 0:
            remaining = length - len(body)
            while remaining > 0:
                data = recv(RECV_SIZE)
                t = perf()
                if not data:
                    raw.end_ns = t
                    raw.error, raw.error_detail = ERR_CLOSED, "connection closed mid-body"
                    return False
                times.append(t)
                pieces.append(data)
                remaining -= len(data)
                if t > deadline_ns:
                    raw.end_ns = t
                    raw.error, raw.error_detail = ERR_TIMEOUT, "request deadline passed"
                    return False
        else:  # body delimited by connection close
            while True:
                data = recv(RECV_SIZE)
                t = perf()
                if not data:
                    break
                times.append(t)
                pieces.append(data)
                if t > deadline_ns:
                    raw.end_ns = t
                    raw.error, raw.error_detail = ERR_TIMEOUT, "request deadline passed"
                    return False
            close = True
        raw.end_ns = t
        mark_http_error(raw)
        return not close


def mark_http_error(raw: RawStream) -> None:
    """A complete response with a non-2xx status is an `http` error, with the start of its body."""
    if not 200 <= raw.status < 300 and not raw.error:
        raw.error = ERR_HTTP
        raw.error_detail = f"HTTP {raw.status}: {b''.join(raw.recv_bytes)[:200].decode('utf-8', 'replace')}"


def _parse_head(head: bytes) -> tuple[int, bool, int, bool]:
    """(status, chunked, content_length or -1, connection_close) from a response head."""
    lines = head.split(b"\r\n")
    status_line = lines[0].split(None, 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return 0, False, -1, True
    try:
        status = int(status_line[1])
    except ValueError:
        return 0, False, -1, True
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
    return status, chunked, length, close


def header_value(head: bytes, name: str) -> str:
    """A header's value from a recorded response head (post-hoc use only)."""
    want = name.lower().encode()
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == want:
            return v.strip().decode("latin-1")
    return ""


def http_request(method: str, path: str, endpoint: Endpoint, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """Serialize one HTTP/1.1 request (prepared once per request, before the point starts)."""
    lines = [f"{method} {endpoint.base_path}{path} HTTP/1.1", f"Host: {endpoint.host_header}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
