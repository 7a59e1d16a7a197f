"""Both HTTP transports on real loopback sockets: the epoll `Mux` (the default) and the threads
`Connection` are fed the same byte scripts by a tiny server and must record the same streams.

The server is a thread with a listening socket on 127.0.0.1 that answers each accepted connection
with the next script of steps (read a request, send bytes, sleep, trickle, wait for the client to
close). Everything is bounded: the server's sockets time out and its thread is joined with a limit.
Time bounds in the asserts are generous: they only prove that nothing waited for a timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import pytest

from backends.http1 import BodyEnd, Endpoint, parse_head
from backends.http_mux import Feed, Item, Mux
from backends.http_stream import Connection
from backends.openai import parse_openai_stream
from backends.records import ERR_HTTP_5XX, ERR_PROTOCOL, ERR_TIMEOUT_TOTAL, ERR_TIMEOUT_TTFT, RawStream

SERVER_LIMIT_S = 20.0  # the server thread never lives longer
STEP_TIMEOUT_S = 10.0  # any one read by the server
NO_HANG_S = 8.0  # a request that took this long waited for a timeout it should not have needed

READ = "read"  # step: read one request (head and Content-Length body)
WAIT_CLOSE = "wait_close"  # step: read and drop bytes until the client closes


@dataclass(frozen=True)
class Trickle:
    """Step: send `data` every `every_s` for at most `for_s` (until the client goes away)."""

    data: bytes
    every_s: float
    for_s: float


def request(n: int) -> bytes:
    body = b'{"n":%d}' % n
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


EVENTS = [
    b'data: {"id":"r1","choices":[{"delta":{"role":"assistant"}}]}\n\n',
    b'data: {"id":"r1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b": keep-alive\n\n",
    b'data: {"id":"r1","choices":[{"delta":{"content":"lo"},"finish_reason":"length"}]}\n\n',
    b'data: {"id":"r1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]
SSE = b"".join(EVENTS)
CHUNKED_BODY = b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n"
HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
HEAD_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(SSE)
HEAD_UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"  # no length, not chunked


class ScriptServer:
    """127.0.0.1 server: the i-th accepted connection plays scripts[i], then is closed."""

    def __init__(self, *scripts: list):
        self.scripts = scripts
        self.requests: list[list[bytes]] = []  # per accepted connection, the requests it read
        self.closed = threading.Semaphore(0)  # released each time a script ends and its socket closes
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.endpoint = Endpoint("127.0.0.1", self.listener.getsockname()[1], "")
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(SERVER_LIMIT_S)
        self.listener.close()
        assert not self.thread.is_alive(), "the script server did not stop"

    def _serve(self) -> None:
        limit = time.monotonic() + SERVER_LIMIT_S
        for script in self.scripts:
            conn = None
            while conn is None and not self.stop.is_set() and time.monotonic() < limit:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
            if conn is None:
                return
            self.requests.append([])
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(STEP_TIMEOUT_S)
                try:
                    self._play(conn, script)
                except OSError:  # the client went away: the script ends here
                    pass
            self.closed.release()

    def _play(self, conn: socket.socket, script: list) -> None:
        pending = b""
        for step in script:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, float):
                time.sleep(step)
            elif step == READ:
                req, pending = _read_request(conn, pending)
                self.requests[-1].append(req)
            elif step == WAIT_CLOSE:
                while conn.recv(65536):
                    pass
            elif isinstance(step, Trickle):
                until = time.monotonic() + step.for_s
                while time.monotonic() < until and not self.stop.is_set():
                    conn.sendall(step.data)
                    time.sleep(step.every_s)


def _read_request(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    """One request (head and Content-Length body) and the bytes received after it."""
    while b"\r\n\r\n" not in buf:
        buf += _recv_some(conn)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next((int(v) for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                   if k.strip().lower() == b"content-length"), 0)
    while len(rest) < length:
        rest += _recv_some(conn)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def _recv_some(conn: socket.socket) -> bytes:
    data = conn.recv(65536)
    if not data:
        raise ConnectionError("client closed before a whole request")
    return data


# -- the two transports, driven the same way: requests one after another on one connection ---------
class _OneItem(Feed):
    def __init__(self, item: Item):
        self.items = [item]

    def due(self, now: int) -> list[Item]:
        out, self.items = self.items, []
        return out

    def exhausted(self) -> bool:
        return not self.items


def over_mux(endpoint: Endpoint, payloads: list[bytes], read_timeout_s: float, deadline_s: float,
             between=None) -> list[RawStream]:
    raws: list[RawStream] = []
    mux = Mux(endpoint, 1, read_timeout_s, lambda item, raw: raws.append(raw))
    try:
        one_by_one(lambda payload, deadline_ns: mux.run(_OneItem(Item(0, 0, payload, deadline_ns))),
                   payloads, deadline_s, between)
    finally:
        mux.close()
    return raws


def over_threads(endpoint: Endpoint, payloads: list[bytes], read_timeout_s: float, deadline_s: float,
                 between=None) -> list[RawStream]:
    raws: list[RawStream] = []
    conn = Connection(endpoint, connect_timeout=5.0, read_timeout=read_timeout_s)

    def send(payload: bytes, deadline_ns: int) -> None:
        raws.append(RawStream())
        conn.stream(payload, raws[-1], deadline_ns)

    try:
        one_by_one(send, payloads, deadline_s, between)
    finally:
        conn.close()
    return raws


def one_by_one(send, payloads: list[bytes], deadline_s: float, between) -> None:
    """Each payload sent once the previous one ended; `between()` runs between two of them."""
    for i, payload in enumerate(payloads):
        if i and between:
            between()
        send(payload, time.perf_counter_ns() + int(deadline_s * 1e9))


TRANSPORTS = {"epoll": over_mux, "threads": over_threads}


def run_both(scripts: list[list], n_requests: int = 1, read_timeout_s: float = 30.0, deadline_s: float = 30.0,
             wait_for_close: bool = False) -> dict[str, tuple[list[RawStream], list[list[bytes]], float]]:
    """Each transport against its own server playing `scripts`: (raws, requests per connection, seconds)."""
    out = {}
    for name, run in TRANSPORTS.items():
        with ScriptServer(*scripts) as server:
            between = (lambda s=server: s.closed.acquire(timeout=5.0)) if wait_for_close else None
            t0 = time.monotonic()
            raws = run(server.endpoint, [request(i) for i in range(n_requests)], read_timeout_s, deadline_s, between)
            took = time.monotonic() - t0
        out[name] = (raws, server.requests, took)
        for raw in raws:
            assert_ordered(raw)
    return out


def reading(raw: RawStream) -> dict:
    """What a request's record says, leaving out the times (those differ run to run)."""
    p = parse_openai_stream(raw)
    return {"status": raw.status, "chunked": raw.chunked, "error": p.error, "error_detail": p.error_detail,
            "body": b"".join(raw.recv_bytes), "events": len(p.event_ns), "content_events": len(p.content_ns),
            "text": p.text, "finish_reason": p.finish_reason, "usage": p.usage_completion_tokens,
            "response_id": p.response_id}


def assert_ordered(raw: RawStream) -> None:
    times = [raw.send_ns, *([raw.headers_ns] if raw.headers_ns else []), *raw.recv_ns, raw.end_ns]
    assert raw.send_ns > 0 and times == sorted(times), times
    assert len(raw.recv_ns) == len(raw.recv_bytes)


def assert_same_readings(results: dict) -> list[dict]:
    readings = {name: [reading(raw) for raw in raws] for name, (raws, _, _) in results.items()}
    assert readings["epoll"] == readings["threads"]
    return readings["epoll"]


GOOD = {"status": 200, "error": "", "error_detail": "", "events": 5, "content_events": 2, "text": "Hello",
        "finish_reason": "length", "usage": 2, "response_id": "r1"}


def assert_good(r: dict) -> None:
    assert {k: r[k] for k in GOOD} == GOOD


# -- the scripts -----------------------------------------------------------------------------------
SPLITS = {
    "with_the_head": [HEAD_CHUNKED + CHUNKED_BODY],
    "last_chunk_split_in_three": [HEAD_CHUNKED, CHUNKED_BODY[:-7], 0.05, CHUNKED_BODY[-7:-6], 0.05,
                                  CHUNKED_BODY[-6:-2], 0.05, CHUNKED_BODY[-2:]],
    "last_chunk_byte_by_byte": [HEAD_CHUNKED + CHUNKED_BODY[:-7],
                                *(x for b in CHUNKED_BODY[-7:] for x in (0.03, bytes([b])))],
}


@pytest.mark.parametrize("split", SPLITS)
def test_chunked_terminator_split_across_reads(split):
    # Two requests on one connection: the first body's end was found by its last chunk, not a close.
    results = run_both([[READ, *SPLITS[split], READ, HEAD_CHUNKED + CHUNKED_BODY]], n_requests=2)
    for r in assert_same_readings(results):
        assert_good(r)
        assert r["chunked"] and r["body"] == CHUNKED_BODY
    for raws, requests, took in results.values():
        assert requests == [[request(0), request(1)]] and took < NO_HANG_S
        if split != "with_the_head":
            assert len(raws[0].recv_bytes) >= 3  # the terminator did come in pieces


def test_content_length_body():
    script = [READ, HEAD_LENGTH + SSE[:40], 0.05, SSE[40:], READ, HEAD_LENGTH + SSE]
    results = run_both([script], n_requests=2)
    for r in assert_same_readings(results):
        assert_good(r)
        assert not r["chunked"] and r["body"] == SSE
    for _, requests, took in results.values():
        assert requests == [[request(0), request(1)]] and took < NO_HANG_S  # kept alive


def test_close_delimited_body():
    # The server's close ends the body; the next request needs (and gets) a new connection.
    results = run_both([[READ, HEAD_UNTIL_CLOSE + SSE[:40], 0.05, SSE[40:]], [READ, HEAD_UNTIL_CLOSE + SSE]],
                       n_requests=2)
    for r in assert_same_readings(results):
        assert_good(r)
        assert not r["chunked"] and r["body"] == SSE
    for _, requests, took in results.values():
        assert requests == [[request(0)], [request(1)]] and took < NO_HANG_S


def test_http_error_status():
    body = b'{"error":"overloaded"}'
    head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    results = run_both([[READ, head % len(body) + body]])
    [r] = assert_same_readings(results)
    assert r["status"] == 503 and r["error"] == ERR_HTTP_5XX and r["error_detail"] == 'HTTP 503: {"error":"overloaded"}'


def test_empty_chunked_body_after_the_head():
    # e.g. an error answered with a chunked body of no data, its last chunk written after the head
    head = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
    results = run_both([[READ, head, 0.05, b"0\r\n\r\n", READ, head + b"0\r\n\r\n"]], n_requests=2)
    for r in assert_same_readings(results):
        assert r["status"] == 500 and r["error"] == ERR_HTTP_5XX and r["body"] == b"0\r\n\r\n"
    for _, requests, took in results.values():
        assert requests == [[request(0), request(1)]] and took < NO_HANG_S  # kept alive, no read timeout


@pytest.mark.parametrize("reply, detail", [
    (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000, "response headers too long or not HTTP"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP response: b'SSH-2.0-OpenSSH_9.6'"),
])
def test_bad_response_head_is_an_error_not_a_hang(reply, detail):
    results = run_both([[READ, reply, WAIT_CLOSE]])
    [r] = assert_same_readings(results)
    assert r["error"] == ERR_PROTOCOL and r["error_detail"] == detail and r["events"] == 0
    for _, _, took in results.values():
        assert took < NO_HANG_S  # read timeout and deadline are 30 s


def test_stale_keepalive_connection_is_retried_on_a_new_one():
    # The server closes the kept-alive connection after the first response; the second request,
    # sent on it after that close, fails before any response head and is resent on a fresh one.
    reply = [READ, HEAD_LENGTH + SSE]
    results = run_both([reply, reply], n_requests=2, wait_for_close=True)
    for r in assert_same_readings(results):
        assert_good(r)
    for _, requests, took in results.values():
        assert requests == [[request(0)], [request(1)]] and took < NO_HANG_S


def test_request_deadline_ends_a_stream_that_never_ends():
    keepalive = chunk(b": keep-alive\n\n")
    script = [READ, HEAD_CHUNKED + keepalive, Trickle(keepalive, 0.05, SERVER_LIMIT_S / 2)]
    results = run_both([script], read_timeout_s=30.0, deadline_s=0.5)
    for raws, _, took in results.values():
        [raw] = raws
        assert raw.error == ERR_TIMEOUT_TOTAL and raw.error_detail == "request deadline passed"
        assert 0.45 <= (raw.end_ns - raw.send_ns) / 1e9 < NO_HANG_S and took < NO_HANG_S
        assert raw.status == 200 and raw.recv_ns  # it was streaming all along
        assert parse_openai_stream(raw).error == ERR_TIMEOUT_TOTAL


def test_silent_server_ends_by_the_read_timeout():
    results = run_both([[READ, WAIT_CLOSE]], read_timeout_s=0.3, deadline_s=30.0)
    [r] = assert_same_readings(results)
    assert r["error"] == ERR_TIMEOUT_TTFT and r["error_detail"] == "no response body in 0.3 s" and r["status"] == 0
    for raws, _, took in results.values():
        assert 0.3 <= (raws[0].end_ns - raws[0].send_ns) / 1e9 < NO_HANG_S and took < NO_HANG_S


# -- the body-end rule itself, without sockets ------------------------------------------------------
def _done_at(head: bytes, pieces: list[bytes]) -> int | None:
    """Which piece completed the body (0: the bytes that came with the head), None if none did."""
    end = BodyEnd(parse_head(head[:-4]), pieces[0])
    if end.done:
        return 0
    return next((i for i, piece in enumerate(pieces[1:], 1) if end.feed(piece)), None)


@pytest.mark.parametrize("head, body", [(HEAD_CHUNKED, CHUNKED_BODY), (HEAD_LENGTH, SSE)], ids=["chunked", "length"])
def test_body_end_is_found_wherever_the_reads_split(head, body):
    n = len(body)
    for a in range(n + 1):  # every split in three reads: the one with the head, then two more
        for b in range(a + 1, n):
            assert _done_at(head, [body[:a], body[a:b], body[b:]]) == 2, (a, b)
        assert _done_at(head, [body[:a], body[a:]] if a < n else [body]) == (1 if a < n else 0), a


def test_chunked_body_that_is_only_its_last_chunk():
    assert _done_at(HEAD_CHUNKED, [b"0\r\n\r\n"]) == 0
    assert _done_at(HEAD_CHUNKED, [b"", b"0\r\n\r\n"]) == 1
    assert _done_at(HEAD_CHUNKED, [b"", b"0\r", b"\n\r\n"]) == 2


def test_body_until_close_never_ends_by_itself():
    assert _done_at(HEAD_UNTIL_CLOSE, [SSE, SSE, b"0\r\n\r\n"]) is None
