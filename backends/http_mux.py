"""Many HTTP/1.1 streams on one thread: an epoll loop over non-blocking keep-alive sockets.

This is the load generator's default transport. Per received chunk it does one recvmsg(), one
timestamp and two list appends, like the per-thread reader in http_stream.py, but with no thread
per stream: no GIL hand-offs, no context switch per chunk, and one epoll_wait() wakes the loop for
every socket that has data. Framing, SSE and JSON are parsed after the request ends. The
timestamp is the kernel's arrival stamp where it gives one (backends/rxstamp.py), so a chunk
that waited while the loop read other sockets keeps the time it arrived.

Requests come from a `Feed`: the closed loop offers the next request when one completes, the
open loop offers requests at their scheduled times. Each finished request is handed to
`on_done(item, raw)` with a filled RawStream.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from time import perf_counter_ns

from backends.http1 import (
    RECV_SIZE,
    BodyEnd,
    Endpoint,
    HeadError,
    Timeouts,
    mark_http_error,
    mark_too_long,
    stale_keepalive,
    take_head,
)
from backends.laghist import LagHistogram
from backends.records import (
    ERR_CANCELLED,
    ERR_CLOSED,
    ERR_CONNECT,
    ERR_PROTOCOL,
    ERR_TIMEOUT_CONNECT,
    ERR_TIMEOUT_IDLE,
    ERR_TIMEOUT_TOTAL,
    ERR_TIMEOUT_TTFT,
    RawStream,
)
from backends.rxstamp import ANC_SIZE, arrival_ns, clock_offset_ns, enable_stamps

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_CHECK_NS = 50_000_000  # how often deadlines are checked
# "Nothing to do yet": a TLS socket raises SSLWant* where a plain one raises BlockingIOError
# (both are OSError, so they must be caught before OSError). Costs nothing when not raised.
_AGAIN = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class State(IntEnum):
    """Where a connection is. Each state has one step that handles its socket's events."""

    CONNECTING = 0  # connect() under way; may already hold a request
    SENDING = 1  # the request did not fit in one send(): the rest waits for the socket
    HEAD = 2  # request sent, response head not yet whole
    BODY = 3  # the hot path: body bytes are timestamped and kept until the body ends
    IDLE = 4  # kept alive between requests
    TUNNEL = 5  # https through a proxy: CONNECT sent, its answer not yet whole (backends/tls_mux.py)
    HANDSHAKE = 6  # TLS handshake under way (backends/tls_mux.py)


_OPENING = (State.CONNECTING, State.TUNNEL, State.HANDSHAKE)  # may hold a request not yet sent


@dataclass(slots=True)
class Item:
    rid: int
    sched_ns: int  # when it was meant to leave (open loop); 0 = as soon as possible
    payload: bytes  # the whole HTTP/1.1 request
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
    __slots__ = ("sock", "fd", "state", "item", "raw", "reused", "retried", "buf", "body", "out",
                 "last_ns", "close_after")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.state = State.CONNECTING
        self.item: Item | None = None
        self.raw: RawStream | None = None
        self.reused = False  # kept alive from an earlier request
        self.retried = False  # carries a request resent after a stale keep-alive connection failed
        self.buf = b""  # response head bytes so far
        self.body: BodyEnd | None = None  # where the response body ends (set with the head)
        self.out = b""  # request bytes not sent yet
        self.last_ns = 0  # last progress (connect, send, recv): the read timeout counts from it
        self.close_after = False  # the response said Connection: close


class Mux:
    """One epoll loop driving up to `max_conns` keep-alive connections to one endpoint."""

    def __init__(self, endpoint: Endpoint, max_conns: int, read_timeout_s: float, on_done,
                 timeouts: Timeouts | None = None):
        """`timeouts` per phase; without them every phase waits `read_timeout_s`."""
        self.endpoint = endpoint
        self.max_conns = max_conns
        t = timeouts or Timeouts(read_timeout_s, read_timeout_s, read_timeout_s)
        self.timeouts = t
        self._limits_ns = (Timeouts.ns(t.connect_s), Timeouts.ns(t.ttft_s), Timeouts.ns(t.idle_s))
        self.on_done = on_done
        self.ep = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.idle: list[_Conn] = []
        self.ready: deque[Item] = deque()
        self.in_flight = 0
        # Time (µs) each loop iteration spent handling ready sockets: the most a request sent, or
        # a chunk stamped without the kernel's stamp, in that iteration can be late because of
        # the client itself.
        self.busy_us = LagHistogram()  # bounded: a count per µs (backends/laghist.py)
        self.kernel_stamps = False  # arrival times from the kernel (backends/rxstamp.py)
        self.clock_offset = clock_offset_ns()  # re-read per loop iteration
        info = socket.getaddrinfo(*self._dial(endpoint), type=socket.SOCK_STREAM)
        self.family, _, _, _, self.addr = info[0]
        steps = self._step_table()
        self._steps = tuple(steps.get(s, self._on_idle) for s in State)  # indexed by state: one lookup per event

    @staticmethod
    def _dial(endpoint: Endpoint) -> tuple[str, int]:
        """Where TCP connections go (a TLS endpoint behind a proxy dials the proxy)."""
        return endpoint.host, endpoint.port

    def _step_table(self) -> dict:
        return {State.CONNECTING: self._on_connected, State.SENDING: self._on_writable,
                State.HEAD: self._on_head, State.BODY: self._on_body, State.IDLE: self._on_idle}

    # -- connections -------------------------------------------------------------------------
    def open_conns(self, n: int) -> None:
        """Connect `n` idle connections ahead of the start, so first requests don't pay for it."""
        for _ in range(min(n, self.max_conns - len(self.conns))):
            self._connect()

    def settle(self, until_ns: int) -> int:
        """Finish opening connections (TCP, proxy tunnel, TLS handshake) until `until_ns`, the
        point's start; returns how many were still opening then. Nothing is stamped yet, so the
        time spent here is not loop lag."""
        steps = self._steps
        while True:
            opening = sum(1 for c in self.conns.values() if c.state in _OPENING)
            now = perf_counter_ns()
            if not opening or now >= until_ns:
                return opening
            for fd, _ev in self.ep.poll(min(until_ns - now, _CHECK_NS) / 1e9):
                c = self.conns.get(fd)
                if c is not None:
                    steps[c.state](c)

    def _connect(self) -> _Conn | None:
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if enable_stamps(s):
            self.kernel_stamps = True
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            s.close()
            return None
        c = _Conn(s)
        c.last_ns = perf_counter_ns()
        self.conns[c.fd] = c
        self.ep.register(c.fd, _OUT | _IN)
        return c

    def _park(self, c: _Conn) -> None:
        c.state = State.IDLE
        self.idle.append(c)

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
        """Give ready requests to connections: idle ones first, then new ones up to `max_conns`,
        then ones still connecting that hold no request yet."""
        while self.ready:
            if self.idle:
                c = self.idle.pop()
                c.reused = True
            elif len(self.conns) < self.max_conns:
                c = self._connect()
                if c is None:
                    self._fail_item(self.ready.popleft(), ERR_CONNECT, "connection refused")
                    continue
            else:
                c = next((x for x in self.conns.values() if x.state in _OPENING and x.item is None), None)
                if c is None:
                    return
            c.item = self.ready.popleft()
            self.in_flight += 1
            if c.state not in _OPENING:
                self._send(c)

    def _fail_item(self, item: Item, error: str, detail: str) -> None:
        now = perf_counter_ns()
        raw = RawStream(send_ns=now, end_ns=now, error=error, error_detail=detail)
        self.on_done(item, raw)

    def _drop_connecting(self, c: _Conn, detail: str, error: str = ERR_CONNECT) -> None:
        """A connection that never connected: its request (if any) fails with a connect error."""
        item = c.item
        self._close(c)
        if item is not None:
            self.in_flight -= 1
            self._fail_item(item, error, detail)

    def _send(self, c: _Conn) -> None:
        c.raw = RawStream()
        c.buf = b""
        c.body = None
        c.raw.send_ns = c.last_ns = perf_counter_ns()
        payload = c.item.payload
        try:
            n = c.sock.send(payload)
        except _AGAIN:
            n = 0
        except OSError as e:
            self._end(c, _os_error_class(e), f"{type(e).__name__}: {e}", reusable=False)
            return
        if n < len(payload):
            c.out = payload[n:]
            c.state = State.SENDING
            self.ep.modify(c.fd, _OUT | _IN)
        else:
            c.state = State.HEAD

    def _end(self, c: _Conn, error: str, detail: str, reusable: bool) -> None:
        """The request on `c` ended (with `error`, or "" when its response arrived whole)."""
        raw, item = c.raw, c.item
        if error and c.buf and not raw.headers_ns:
            raw.header_bytes = c.buf  # part of a head came: the server answered, this is no stale connection
        if error and not c.retried and stale_keepalive(raw, c.reused, error) and self._resend(c):
            return
        if not raw.end_ns:
            raw.end_ns = perf_counter_ns()
        if error and not raw.error:
            raw.error, raw.error_detail = error, detail
        c.item = None
        c.raw = None
        self.in_flight -= 1
        if reusable:
            self._park(c)
        else:
            self._close(c)
        self.on_done(item, raw)

    def _resend(self, c: _Conn) -> bool:
        """Move the request of `c` (which is closed) to a fresh connection; False if none opens."""
        item = c.item
        self._close(c)
        fresh = self._connect()
        if fresh is None:
            return False
        fresh.item, fresh.retried = item, True
        return True

    def _finish(self, c: _Conn, reusable: bool) -> None:
        """The response arrived whole (or too long): a non-2xx status still makes it an error."""
        if mark_too_long(c.raw, c.body):
            reusable = False
        mark_http_error(c.raw)
        self._end(c, "", "", reusable)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, feed: Feed, should_stop=None) -> None:
        """Send what `feed` offers and read the responses until it is exhausted and none is left.
        `should_stop()`, asked at each deadline check, cancels every request in flight when true
        (the feed must then offer no more)."""
        next_check = perf_counter_ns() + _CHECK_NS
        while True:
            now = perf_counter_ns()
            self.ready.extend(feed.due(now))
            if self.ready:
                self._assign()
            if feed.exhausted() and not self.ready and self.in_flight == 0:
                return
            events = self.ep.poll(self._poll_timeout_s(feed, now, next_check))
            now = self._handle(events) if events else perf_counter_ns()
            if now >= next_check:
                next_check = now + _CHECK_NS
                self._check_deadlines(now)
                if should_stop is not None and should_stop():
                    self.cancel_all("stopped before the response ended")

    @staticmethod
    def _poll_timeout_s(feed: Feed, now: int, next_check: int) -> float:
        """Until the next deadline check or the next scheduled request, whichever is first."""
        nxt = feed.next_ns()
        wait_ns = min(next_check - now, (nxt - now) if nxt is not None else _CHECK_NS)
        return max(0.0, wait_ns / 1e9)

    def _handle(self, events: list[tuple[int, int]]) -> int:
        """Run each ready socket's step; records the time it took, returns the time after."""
        t_events = perf_counter_ns()
        self.clock_offset = clock_offset_ns(self.clock_offset)
        conns, steps = self.conns, self._steps
        for fd, _ev in events:
            c = conns.get(fd)
            if c is not None:
                steps[c.state](c)
        now = perf_counter_ns()
        self.busy_us.append((now - t_events) // 1000)
        return now

    def _on_connected(self, c: _Conn) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop_connecting(c, f"connect: {errno.errorcode.get(err, err)}")
            return
        self._connected(c)

    def _connected(self, c: _Conn) -> None:
        """`c` is open (for TLS: handshake done): send its request or keep it for the next one."""
        self.ep.modify(c.fd, _IN)
        if c.item is not None:
            self._send(c)
            return
        self._park(c)
        if self.ready:
            self._assign()

    def _on_writable(self, c: _Conn) -> None:
        try:
            n = c.sock.send(c.out)
        except _AGAIN:
            return
        except OSError as e:
            self._end(c, ERR_CLOSED, f"{type(e).__name__}: {e}", reusable=False)
            return
        c.out = c.out[n:]
        if not c.out:
            c.state = State.HEAD
            self.ep.modify(c.fd, _IN)

    def _on_head(self, c: _Conn) -> None:
        try:
            data, anc, _, _ = c.sock.recvmsg(RECV_SIZE, ANC_SIZE)
        except _AGAIN:
            return
        except OSError as e:
            self._end(c, _os_error_class(e), f"{type(e).__name__}: {e}", reusable=False)
            return
        t = arrival_ns(anc, self.clock_offset, c.last_ns, perf_counter_ns())
        if not data:
            self._end(c, ERR_CLOSED, "connection closed before response headers", reusable=False)
            return
        c.buf += data
        c.last_ns = t
        raw = c.raw
        try:
            got = take_head(c.buf, raw, t)
        except HeadError as e:
            self._end(c, ERR_PROTOCOL, str(e), reusable=False)
            return
        if got is None:
            return
        head, body = got
        c.buf = b""
        c.close_after = head.close
        c.state = State.BODY
        c.body = BodyEnd(head, body)
        if body:
            raw.recv_ns.append(t)
            raw.recv_bytes.append(body)
        if c.body.done:
            raw.end_ns = t
            self._finish(c, reusable=not head.close)

    def _on_body(self, c: _Conn) -> None:
        """The hot path: one recvmsg, one timestamp, two appends."""
        try:
            data, anc, _, _ = c.sock.recvmsg(RECV_SIZE, ANC_SIZE)
        except _AGAIN:
            return
        except OSError as e:
            self._end(c, ERR_CLOSED, f"{type(e).__name__}: {e}", reusable=False)
            return
        t = arrival_ns(anc, self.clock_offset, c.last_ns, perf_counter_ns())
        raw = c.raw
        if not data:
            raw.end_ns = t
            if c.body.until_close:  # the close is the end of the body
                self._finish(c, reusable=False)
            else:
                self._end(c, ERR_CLOSED, "connection closed mid-stream", reusable=False)
            return
        raw.recv_ns.append(t)
        raw.recv_bytes.append(data)
        c.last_ns = t
        if c.body.feed(data):
            raw.end_ns = t
            self._finish(c, reusable=not c.close_after)

    def _on_idle(self, c: _Conn) -> None:
        """The server closed a kept-alive connection (or sent bytes nobody asked for): drop it."""
        try:
            data = c.sock.recv(RECV_SIZE)
        except _AGAIN:
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)

    def _check_deadlines(self, now: int) -> None:
        """Each request in flight against its deadline and the phase timeouts (every _CHECK_NS:
        nothing of this runs per chunk). The first that passed names the failure."""
        connect_ns, ttft_ns, idle_ns = self._limits_ns
        for c in list(self.conns.values()):
            item, raw = c.item, c.raw
            if item is None:
                continue
            if raw is None:  # still connecting with a request waiting
                if now - c.last_ns > connect_ns:
                    self._drop_connecting(c, f"no connection in {self.timeouts.connect_s:g} s", ERR_TIMEOUT_CONNECT)
            elif item.deadline_ns and now > item.deadline_ns:
                self._end(c, ERR_TIMEOUT_TOTAL, "request deadline passed", reusable=False)
            elif raw.recv_ns:
                if now - raw.recv_ns[-1] > idle_ns:
                    self._end(c, ERR_TIMEOUT_IDLE, f"no data for {self.timeouts.idle_s:g} s", reusable=False)
            elif now - raw.send_ns > ttft_ns:
                self._end(c, ERR_TIMEOUT_TTFT, f"no response body in {self.timeouts.ttft_s:g} s", reusable=False)

    def cancel_all(self, detail: str) -> None:
        """End every request in flight or waiting for a connection as cancelled."""
        while self.ready:
            self._fail_item(self.ready.popleft(), ERR_CANCELLED, detail)
        for c in list(self.conns.values()):
            if c.item is None:
                continue
            if c.raw is None:
                self._drop_connecting(c, detail, ERR_CANCELLED)
            else:
                c.retried = True  # no resend
                self._end(c, ERR_CANCELLED, detail, reusable=False)

    def close(self) -> None:
        for c in list(self.conns.values()):
            self._close(c)
        self.ep.close()


def _os_error_class(e: OSError) -> str:
    """A socket error once connected: a refusal is `connect`, anything else a reset."""
    return ERR_CONNECT if isinstance(e, ConnectionRefusedError) else ERR_CLOSED


def make_mux(endpoint: Endpoint, max_conns: int, read_timeout_s: float, on_done,
             timeouts: Timeouts | None = None) -> Mux:
    """The loop for `endpoint`: this plain one, or for https the TLS one (backends/tls_mux.py),
    so plain http runs exactly this code."""
    if endpoint.tls is None:
        return Mux(endpoint, max_conns, read_timeout_s, on_done, timeouts)
    from backends.tls_mux import TLSMux

    return TLSMux(endpoint, max_conns, read_timeout_s, on_done, timeouts)
