"""Kernel receive stamps (backends/rxstamp.py): a chunk that waits in the socket while the epoll
loop is busy keeps the time it arrived, over plain http and over TLS, on real loopback sockets."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from time import perf_counter_ns

import pytest

from backends import rxstamp
from backends.http1 import parse_url
from backends.http_mux import Feed, Item, make_mux
from backends.mock.tls import issue, make_ca
from backends.records import RawStream
from backends.tls import TLSSettings

pytestmark = pytest.mark.skipif(not rxstamp.AVAILABLE, reason="kernel receive stamps need 64-bit Linux")

BUSY_S = 0.4  # how long the loop is kept from reading
REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


def _timespec(ns: int) -> bytes:
    return struct.pack("@qq", ns // 1_000_000_000, ns % 1_000_000_000)


def test_arrival_is_the_kernel_stamp_kept_within_what_is_known():
    stamp = [(socket.SOL_SOCKET, rxstamp.SO_TIMESTAMPNS, _timespec(5_000_000_123))]
    assert rxstamp.arrival_ns(stamp, 1_000_000_000, 0, 10**12) == 4_000_000_123  # realtime − offset
    assert rxstamp.arrival_ns(stamp, 1_000_000_000, 4_500_000_000, 10**12) == 4_500_000_000  # not before the floor
    assert rxstamp.arrival_ns(stamp, 1_000_000_000, 0, 3_000_000_000) == 3_000_000_000  # not after the read
    assert rxstamp.arrival_ns([], 0, 0, 77) == 77  # no stamp: the read's own time
    other = [(socket.IPPROTO_IP, 1, b"\0" * 16)]
    assert rxstamp.arrival_ns(other, 0, 0, 77) == 77


def test_clock_offset_converts_wall_time_to_perf_counter():
    off = rxstamp.clock_offset_ns()
    assert abs((time.time_ns() - off) - perf_counter_ns()) < 50_000_000  # the same instant, give or take a deschedule


class _Server:
    """One connection: read the request, send the head and a first chunk, then a second chunk
    while the client's loop is busy (perf_counter_ns taken just before each send)."""

    def __init__(self, context: ssl.SSLContext | None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.sent_ns: list[int] = []
        self.client_busy = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, conn, data: bytes) -> None:
        self.sent_ns.append(perf_counter_ns())
        conn.sendall(data)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        if self.context is not None:
            conn = self.context.wrap_socket(conn, server_side=True)
        with conn:
            buf = b""
            while not buf.endswith(b"{}"):  # bounded by the 10 s socket timeout
                buf += conn.recv(4096)
            self._send(conn, HEAD + _chunk(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'))
            self.client_busy.wait(10)
            time.sleep(0.05)
            self._send(conn, _chunk(b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n') + b"0\r\n\r\n")
            time.sleep(BUSY_S)  # the client reads it only now; keep the connection open until then


class _BusyFeed(Feed):
    """One request; once its first chunk has been read, the loop's next turn is kept busy."""

    def __init__(self, payload: bytes, server: _Server, raws: list):
        self.items = [Item(0, 0, payload)]
        self.server, self.raws = server, raws
        self.busy_until = 0

    def due(self, now: int) -> list[Item]:
        out, self.items = self.items, []
        if not out and not self.busy_until and self.raws_started():
            self.server.client_busy.set()
            time.sleep(BUSY_S)  # the loop does nothing else meanwhile: the second chunk waits in the socket
            self.busy_until = perf_counter_ns()
        return out

    def raws_started(self) -> bool:
        return bool(self.raws and self.raws[0].recv_ns)

    def exhausted(self) -> bool:
        return not self.items


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_chunk_read_late_keeps_its_arrival_time(tmp_path, tls):
    context, settings = None, None
    if tls:
        ca = make_ca(tmp_path)
        server_cert = issue(ca, tmp_path, "server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_cert.cert, server_cert.key)
        settings = TLSSettings(ca_cert=str(ca.cert))
    server = _Server(context)
    endpoint = parse_url(f"{'https' if tls else 'http'}://127.0.0.1:{server.port}", settings)
    raws: list[RawStream] = []
    done: list[RawStream] = []
    mux = make_mux(endpoint, 1, 10.0, lambda item, raw: done.append(raw))
    real_send = mux._send

    def send_and_watch(c):  # the feed watches the stream as it fills
        real_send(c)
        raws.append(c.raw)

    mux._send = send_and_watch
    feed = _BusyFeed(REQUEST, server, raws)
    try:
        mux.run(feed)
    finally:
        mux.close()
        server.thread.join(10)
        server.listener.close()
    assert mux.kernel_stamps
    (raw,) = done
    assert not raw.error and feed.busy_until
    last = raw.recv_ns[-1]
    assert last <= feed.busy_until - int(0.2e9), "the late chunk was stamped when read, not when it arrived"
    assert last >= server.sent_ns[-1] - 1_000_000  # and not before the server sent it
    assert raw.recv_ns == sorted(raw.recv_ns) and raw.recv_ns[0] >= raw.send_ns


def test_an_interrupted_clock_read_keeps_the_previous_offset(monkeypatch):
    ticks = iter(range(0, 10**9, 1_000_000))  # every perf_counter read 1 ms after the last: "interrupted"
    monkeypatch.setattr(rxstamp, "perf_counter_ns", lambda: next(ticks))
    monkeypatch.setattr(rxstamp, "time_ns", lambda: 5 * 10**9)
    assert rxstamp.clock_offset_ns(previous=123) == 123
    fast = iter(range(0, 10**9, 1_000))  # 1 µs apart: a clean read
    monkeypatch.setattr(rxstamp, "perf_counter_ns", lambda: next(fast))
    assert rxstamp.clock_offset_ns(previous=123) == 5 * 10**9 - 500
