"""Many HTTP/1.1 streams on one thread: an epoll loop over non-blocking keep-alive sockets.

This is the load generator's default transport. Per received chunk it does one recv(), one
timestamp and two list appends, exactly like the per-thread reader in http_stream.py, but with no
thread per stream: no GIL hand-offs, no context switch per chunk, and one epoll_wait() wakes the
loop for every socket that has data. Framing, SSE and JSON are parsed after the request ends.

Requests come from a `Feed`: the closed loop offers the next request when one completes, the
open loop offers requests at their scheduled times. Each finished request is handed to
`on_done(item, raw)` with a filled RawStream.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections import deque
from dataclasses import dataclass

from backends.http_stream import _LAST_CHUNK, RECV_SIZE, Endpoint, _parse_head, mark_http_error
from backends.records import ERR_CLOSED, ERR_CONNECT, ERR_PROTOCOL, ERR_TIMEOUT, RawStream

_CONNECTING, _SENDING, _HEAD, _BODY, _IDLE = range(5)
_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_CHECK_NS = 50_000_000  # how often deadlines are checked


@dataclass(slots=True)
class Item:
    rid: int
    sched_ns: int  # when it was meant to leave (open loop); 0 = as soon as possible
    payload: bytes
    deadline_ns: int = 0  # 0 = no deadline besides the read timeout


class Feed:
    """Where requests come from. `due(now)` returns items ready now; `next_ns()` the next time one
    will be (None if only completions can produce more); `finished(item)` is told of each end."""

    def due(self, now: int) -> list[Item]:  # pragma: no cover - interface
        raise NotImplementedError

    def next_ns(self) -> int | None:
        return None

    def finished(self, item: Item) -> None:
        pass

    def exhausted(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class _Conn:
    __slots__ = ("sock", "fd", "state", "item", "raw", "reused", "buf", "remaining", "tail", "out",
                 "last_ns", "retried", "close_after")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.state = _CONNECTING
        self.item: Item | None = None
        self.raw: RawStream | None = None
        self.reused = False
        self.buf = b""
        self.remaining = -1
        self.tail = b""
        self.out = b""
        self.last_ns = 0
        self.retried = False
        self.close_after = False  # the response said Connection: close


class Mux:
    """One epoll loop driving up to `max_conns` keep-alive connections to one endpoint."""

    def __init__(self, endpoint: Endpoint, max_conns: int, read_timeout_s: float, on_done):
        self.endpoint = endpoint
        self.max_conns = max_conns
        self.read_timeout_ns = int(read_timeout_s * 1e9)
        self.on_done = on_done
        self.ep = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.idle: list[_Conn] = []
        self.ready: deque[Item] = deque()
        self.in_flight = 0
        # Time (µs) each loop iteration spent handling ready sockets: the most a timestamp taken
        # in that iteration can be late because of the client itself.
        self.busy_us: list[int] = []
        info = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        self.family, _, _, _, self.addr = info[0]

    # -- connections -------------------------------------------------------------------------
    def open_conns(self, n: int) -> None:
        """Connect `n` idle connections ahead of the start, so first requests don't pay for it."""
        for _ in range(min(n, self.max_conns - len(self.conns))):
            c = self._connect()
            if c is not None:
                c.state = _CONNECTING

    def _connect(self) -> _Conn | None:
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            s.close()
            return None
        c = _Conn(s)
        c.last_ns = time.perf_counter_ns()
        self.conns[c.fd] = c
        self.ep.register(c.fd, _OUT | _IN)
        return c

    def _close(self, c: _Conn) -> None:
        self.conns.pop(c.fd, None)
        if c in self.idle:
            self.idle.remove(c)
        try:
            self.ep.unregister(c.fd)
        except (OSError, ValueError):
            pass
        c.sock.close()

    # -- requests ----------------------------------------------------------------------------
    def _assign(self) -> None:
        while self.ready:
            if self.idle:
                c = self.idle.pop()
                c.reused = True
            elif len(self.conns) < self.max_conns:
                c = self._connect()
                if c is None:
                    item = self.ready.popleft()
                    self._fail_item(item, ERR_CONNECT, "connection refused")
                    continue
                c.reused = False
            else:
                # connections still connecting may hold no item yet: give them one
                c = next((x for x in self.conns.values() if x.state == _CONNECTING and x.item is None), None)
                if c is None:
                    return
            item = self.ready.popleft()
            c.item = item
            self.in_flight += 1
            if c.state != _CONNECTING:
                self._send(c)

    def _fail_item(self, item: Item, error: str, detail: str) -> None:
        now = time.perf_counter_ns()
        raw = RawStream(send_ns=now, end_ns=now, error=error, error_detail=detail)
        self.on_done(item, raw)

    def _send(self, c: _Conn) -> None:
        c.raw = RawStream()
        c.buf = b""
        c.tail = b""
        c.remaining = -1
        c.raw.send_ns = c.last_ns = time.perf_counter_ns()
        try:
            n = c.sock.send(c.item.payload)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            self._end(c, ERR_CLOSED if c.reused else ERR_CONNECT, f"{type(e).__name__}: {e}", reusable=False)
            return
        if n < len(c.item.payload):
            c.out = c.item.payload[n:]
            c.state = _SENDING
            self.ep.modify(c.fd, _OUT | _IN)
        else:
            c.state = _HEAD

    def _end(self, c: _Conn, error: str, detail: str, reusable: bool) -> None:
        raw, item = c.raw, c.item
        if error and not raw.headers_ns and c.reused and not c.retried:
            # an idle keep-alive connection the server had closed: resend once on a fresh one
            self._close(c)
            fresh = self._connect()
            if fresh is not None:
                fresh.item, fresh.retried = item, True
                return
        if not raw.end_ns:
            raw.end_ns = time.perf_counter_ns()
        if error and not raw.error:
            raw.error, raw.error_detail = error, detail
        c.item = None
        c.raw = None
        self.in_flight -= 1
        if reusable:
            c.state = _IDLE
            self.idle.append(c)
        else:
            self._close(c)
        self.on_done(item, raw)

    def _finish(self, c: _Conn, reusable: bool) -> None:
        """The response arrived whole: a non-2xx status still makes it an error."""
        mark_http_error(c.raw)
        self._end(c, "", "", reusable)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, feed: Feed) -> None:
        perf = time.perf_counter_ns
        next_check = perf() + _CHECK_NS
        conns = self.conns
        poll = self.ep.poll
        while True:
            now = perf()
            self.ready.extend(feed.due(now))
            if self.ready:
                self._assign()
            if feed.exhausted() and not self.ready and self.in_flight == 0:
                return
            nxt = feed.next_ns()
            wait_ns = min(next_check - now, (nxt - now) if nxt is not None else _CHECK_NS)
            timeout = max(0.0, wait_ns / 1e9)
            events = poll(timeout)
            t_events = perf()
            for fd, _ev in events:
                c = conns.get(fd)
                if c is None:
                    continue
                state = c.state
                if state == _BODY:
                    # the hot path: one recv, one timestamp, two appends
                    try:
                        data = c.sock.recv(RECV_SIZE)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        self._end(c, ERR_CLOSED, f"{type(e).__name__}: {e}", reusable=False)
                        continue
                    t = perf()
                    if data:
                        raw = c.raw
                        raw.recv_ns.append(t)
                        raw.recv_bytes.append(data)
                        c.last_ns = t
                        if c.remaining == -2:  # chunked
                            if len(data) >= 7:
                                c.tail = data[-7:]
                            else:
                                c.tail = (c.tail + data)[-7:]
                            if c.tail == _LAST_CHUNK:
                                raw.end_ns = t
                                self._finish(c, reusable=not c.close_after)
                        elif c.remaining >= 0:
                            c.remaining -= len(data)
                            if c.remaining <= 0:
                                raw.end_ns = t
                                self._finish(c, reusable=not c.close_after)
                    else:
                        c.raw.end_ns = t
                        if c.remaining == -1:  # body delimited by close: this is its end
                            self._finish(c, reusable=False)
                        else:
                            self._end(c, ERR_CLOSED, "connection closed mid-stream", reusable=False)
                elif state == _HEAD:
                    self._read_head(c, perf)
                elif state == _CONNECTING:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        item = c.item
                        self._close(c)
                        if item is not None:
                            self.in_flight -= 1
                            self._fail_item(item, ERR_CONNECT, f"connect: {errno.errorcode.get(err, err)}")
                        continue
                    self.ep.modify(fd, _IN)
                    if c.item is not None:
                        self._send(c)
                    else:
                        c.state = _IDLE
                        self.idle.append(c)
                        if self.ready:
                            self._assign()
                elif state == _SENDING:
                    try:
                        n = c.sock.send(c.out)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        self._end(c, ERR_CLOSED, f"{type(e).__name__}: {e}", reusable=False)
                        continue
                    c.out = c.out[n:]
                    if not c.out:
                        c.state = _HEAD
                        self.ep.modify(fd, _IN)
                else:  # idle: the server closed it (or sent junk); drop it
                    try:
                        data = c.sock.recv(RECV_SIZE)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self._close(c)
            now = perf()
            if events:
                self.busy_us.append((now - t_events) // 1000)
            if now >= next_check:
                next_check = now + _CHECK_NS
                self._check_deadlines(now)

    def _read_head(self, c: _Conn, perf) -> None:
        try:
            data = c.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(c, ERR_CLOSED if c.reused else ERR_CONNECT, f"{type(e).__name__}: {e}", reusable=False)
            return
        t = perf()
        raw = c.raw
        if not data:
            self._end(c, ERR_CLOSED, "connection closed before response headers", reusable=False)
            return
        c.buf += data
        c.last_ns = t
        k = c.buf.find(b"\r\n\r\n")
        if k < 0:
            if len(c.buf) > 65536:
                self._end(c, ERR_PROTOCOL, "response headers too long or not HTTP", reusable=False)
            return
        raw.headers_ns = t
        head = c.buf[:k]
        raw.header_bytes = head
        status, chunked, length, close = _parse_head(head)
        raw.status, raw.chunked = status, chunked
        if status == 0:
            self._end(c, ERR_PROTOCOL, f"not an HTTP response: {head[:60]!r}", reusable=False)
            return
        body = c.buf[k + 4 :]
        c.buf = b""
        c.close_after = close
        c.state = _BODY
        c.remaining = -2 if chunked else length
        if body:
            raw.recv_ns.append(t)
            raw.recv_bytes.append(body)
        if chunked:
            c.tail = body[-7:]
            if c.tail == _LAST_CHUNK or body == b"0\r\n\r\n":
                raw.end_ns = t
                self._finish(c, reusable=not close)
        elif length >= 0:
            c.remaining = length - len(body)
            if c.remaining <= 0:
                raw.end_ns = t
                self._finish(c, reusable=not close)

    def _check_deadlines(self, now: int) -> None:
        for c in list(self.conns.values()):
            if c.item is None:
                continue
            if c.raw is None:  # still connecting with a request waiting
                if now - c.last_ns > self.read_timeout_ns:
                    item = c.item
                    self._close(c)
                    self.in_flight -= 1
                    self._fail_item(item, ERR_CONNECT, "connect timed out")
                continue
            if c.item.deadline_ns and now > c.item.deadline_ns:
                self._end(c, ERR_TIMEOUT, "request deadline passed", reusable=False)
            elif now - c.last_ns > self.read_timeout_ns:
                self._end(c, ERR_TIMEOUT, f"no data for {self.read_timeout_ns / 1e9:g} s", reusable=False)

    def close(self) -> None:
        for c in list(self.conns.values()):
            self._close(c)
        self.ep.close()

