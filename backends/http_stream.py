"""The threads transport: a lean HTTP/1.1 streaming reader on a blocking socket, one per thread.

Why not aiohttp/httpx: per received chunk they build objects, decode and await, and one client
core then saturates at a tenth of the chunk rate a GPU server produces; the clock ends up
measuring the client's own queue (see benchmarks/truth/ for figures). Here each recv() costs one
timestamp and two list appends; framing and SSE parsing happen after the request (backends/sse.py).
The HTTP/1.1 rules (head, body end, keep-alive retry) are backends/http1.py, shared with the
default epoll transport (backends/http_mux.py).

One `Connection` per stream thread (`--transport threads`), kept alive across requests.
"""

from __future__ import annotations

import socket
import time

from backends import tls
from backends.http1 import (  # noqa: F401  (parse_url: profiler/cli.py and sweep.py import it from here)
    RECV_SIZE,
    BodyEnd,
    Endpoint,
    HeadError,
    ResponseHead,
    Timeouts,
    mark_http_error,
    mark_too_long,
    parse_url,
    stale_keepalive,
    take_head,
)
from backends.records import (
    ERR_CLOSED,
    ERR_CONNECT,
    ERR_PROTOCOL,
    ERR_TIMEOUT_CONNECT,
    ERR_TIMEOUT_IDLE,
    ERR_TIMEOUT_TOTAL,
    ERR_TIMEOUT_TTFT,
    RawStream,
)


class Connection:
    """A keep-alive connection to one endpoint, reopened when the server closes it."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 timeouts: Timeouts | None = None):
        """`timeouts` per phase; without them `connect_timeout`, then `read_timeout` for each wait."""
        self.endpoint = endpoint
        self.timeouts = timeouts or Timeouts(connect_timeout, read_timeout, read_timeout)
        self.connect_timeout = self.timeouts.connect_s or None
        self.read_timeout = read_timeout
        self.sock: socket.socket | None = None
        self.session = None  # TLS: the session the next connection offers to resume

    def close(self) -> None:
        if self.sock is not None:
            if self.endpoint.tls is not None:
                self.session = self.sock.session or self.session
            try:
                self.sock.close()
            finally:
                self.sock = None

    def open(self) -> socket.socket:
        e = self.endpoint
        if e.tls is not None:
            s = tls.connect_blocking(e.tls, e.host, e.port, self.connect_timeout, self.session)
        else:
            s = socket.create_connection((e.host, e.port), timeout=self.connect_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        return s

    def stream(self, request: bytes, raw: RawStream, deadline_ns: int) -> None:
        """Send `request`, record the response into `raw`. Never raises for network faults."""
        for attempt in (0, 1):
            reused = self.sock is not None
            try:
                sock = self.sock or self.open()
            except TimeoutError:
                raw.send_ns = raw.end_ns = time.perf_counter_ns()
                raw.error = ERR_TIMEOUT_CONNECT
                raw.error_detail = f"no connection in {self.timeouts.connect_s:g} s"
                return
            except OSError as e:
                raw.send_ns = raw.end_ns = time.perf_counter_ns()
                raw.error, raw.error_detail = ERR_CONNECT, f"{type(e).__name__}: {e}"
                return
            if not self._exchange(sock, request, raw, deadline_ns):
                self.close()
            if attempt == 0 and raw.error and stale_keepalive(raw, reused):
                raw.error = raw.error_detail = ""
                raw.recv_ns.clear()
                raw.recv_bytes.clear()
                continue
            return

    def _exchange(self, sock: socket.socket, request: bytes, raw: RawStream, deadline_ns: int) -> bool:
        """One request and its response; True when the connection can be reused."""
        perf = time.perf_counter_ns
        to = self.timeouts
        try:
            raw.send_ns = perf()
            sock.settimeout(_wait_s(to.ttft_s, deadline_ns, raw.send_ns))
            sock.sendall(request)
            got = _read_head(sock.recv, raw, perf)
            if got is None:
                return False
            head, body, t = got
            return _read_body(sock, raw, head, body, t, deadline_ns, perf, to)
        except TimeoutError:
            raw.end_ns = perf()
            if raw.end_ns >= deadline_ns:
                raw.error, raw.error_detail = ERR_TIMEOUT_TOTAL, "request deadline passed"
            elif raw.recv_ns:
                raw.error, raw.error_detail = ERR_TIMEOUT_IDLE, f"no data for {to.idle_s:g} s"
            else:
                raw.error, raw.error_detail = ERR_TIMEOUT_TTFT, f"no response body in {to.ttft_s:g} s"
        except OSError as e:
            raw.end_ns = perf()
            raw.error = ERR_CONNECT if isinstance(e, ConnectionRefusedError) else ERR_CLOSED
            raw.error_detail = f"{type(e).__name__}: {e}"
        return False


def _wait_s(phase_s: float, deadline_ns: int, now_ns: int) -> float:
    """A socket timeout: the phase's limit, cut to what is left of the request's deadline."""
    left = max(0.001, (deadline_ns - now_ns) / 1e9)
    return min(phase_s, left) if phase_s > 0 else left


def _fail(raw: RawStream, t_ns: int, error: str, detail: str) -> None:
    raw.end_ns = t_ns
    raw.error, raw.error_detail = error, detail


def _read_head(recv, raw: RawStream, perf) -> tuple[ResponseHead, bytes, int] | None:
    """Receive until the response head is whole: (head, body bytes that came with it, arrival)."""
    buf = b""
    while True:
        try:
            data = recv(RECV_SIZE)
        except OSError:
            raw.header_bytes = buf  # part of a head came: no stale keep-alive connection
            raise
        t = perf()
        if not data:
            raw.header_bytes = buf
            _fail(raw, t, ERR_CLOSED, "connection closed before response headers")
            return None
        buf += data
        try:
            got = take_head(buf, raw, t)
        except HeadError as e:
            _fail(raw, t, ERR_PROTOCOL, str(e))
            return None
        if got is not None:
            return got[0], got[1], t


def _read_body(sock, raw: RawStream, head: ResponseHead, body: bytes, t: int, deadline_ns: int, perf,
               timeouts: Timeouts) -> bool:
    """The hot path: one recv(), one timestamp, two appends until the body ends. True when the
    connection can be reused. The socket timeout is the TTFT limit until the first body byte and
    the idle limit after it (set once, at the switch)."""
    recv = sock.recv
    times = raw.recv_ns
    pieces = raw.recv_bytes
    if body:
        times.append(t)
        pieces.append(body)
    end = BodyEnd(head, body)
    done = end.done
    idle_set = bool(body)
    if idle_set and not done:
        sock.settimeout(_wait_s(timeouts.idle_s, deadline_ns, t))
    while not done:
        data = recv(RECV_SIZE)
        t = perf()
        if not data:
            if end.until_close:
                break
            _fail(raw, t, ERR_CLOSED, "connection closed mid-stream" if end.chunked else "connection closed mid-body")
            return False
        times.append(t)
        pieces.append(data)
        done = end.feed(data)
        if t > deadline_ns:
            _fail(raw, t, ERR_TIMEOUT_TOTAL, "request deadline passed")
            return False
        if not idle_set:
            idle_set = True
            sock.settimeout(_wait_s(timeouts.idle_s, deadline_ns, t))
    raw.end_ns = t
    if mark_too_long(raw, end):
        return False
    mark_http_error(raw)
    return not (head.close or end.until_close)
