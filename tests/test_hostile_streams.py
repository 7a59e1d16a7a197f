"""Hostile bytes cannot crash or exhaust the stream parser (property-based, hypothesis).

Whatever a server sends — arbitrary recv() splits, garbage, invalid UTF-8, absurd chunk sizes,
huge events, JSON of any shape — `parse_openai_stream` (HTTP chunked framing, SSE framing, JSON
events: backends/sse.py, backends/openai.py) returns a ParsedStream; a malformed stream is a
classified `protocol` (or `server_error`) error, never an exception. Sizes are capped
(backends/http1.py MAX_BODY for the transports, backends/sse.py MAX_EVENT for the parser).
"""

from __future__ import annotations

import json
import resource

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.http1 import MAX_BODY, BodyEnd, parse_head
from backends.openai import parse_openai_stream
from backends.records import ERR_PROTOCOL, ERR_SERVER, ParsedStream, RawStream
from backends.sse import MAX_EVENT, dechunk, iter_events

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked"
GOOD = [b'data: {"id":"c","choices":[{"delta":{"role":"assistant"}}]}\n\n',
        b'data: {"id":"c","choices":[{"delta":{"content":"Hi"}}]}\n\n',
        b'data: {"id":"c","choices":[{"delta":{"content":" there"},"finish_reason":"length"}]}\n\n',
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
        b"data: [DONE]\n\n"]


def frame(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def raw_of(body: bytes, cuts: list[int], chunked: bool = True) -> RawStream:
    """A recorded response whose body arrived in pieces cut at `cuts`."""
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    pieces = [body[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]
    return RawStream(send_ns=1, headers_ns=2, end_ns=10 + len(pieces), status=200, chunked=chunked,
                     header_bytes=HEAD if chunked else HEAD.split(b"\r\ntransfer")[0],
                     recv_ns=list(range(3, 3 + len(pieces))), recv_bytes=pieces)


def parse(body: bytes, cuts: list[int], chunked: bool = True) -> ParsedStream:
    out = parse_openai_stream(raw_of(body, cuts, chunked))
    assert out.error in ("", ERR_PROTOCOL, ERR_SERVER)
    return out


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)


@FAST
@given(cuts)
def test_any_split_of_a_good_stream_reads_the_same(c):
    body = b"".join(frame(e) for e in GOOD) + b"0\r\n\r\n"
    out = parse(body, c)
    assert not out.error and out.text == "Hi there" and out.usage_completion_tokens == 2


@FAST
@given(st.binary(max_size=2048), cuts, st.booleans())
def test_garbage_is_a_classified_error_never_an_exception(data, c, chunked):
    parse(data, c, chunked)


@FAST
@given(st.lists(st.sampled_from(GOOD + [b"data: \xff\xfe\x80\n\n", b"data: {\"choices\": 7}\n\n",
                                         b"data: [[[[[[\n\n", b"data: {\"choices\": [5]}\n\n",
                                         b"data: {\"choices\": [{\"delta\": \"x\"}]}\n\n", b": ping\n\n",
                                         b"data: {\"error\": {\"message\": \"boom\"}}\n\n", b"event: x\r\n",
                                         b"data: {\"usage\": {\"completion_tokens\": true}}\n\n"]),
                max_size=12), cuts)
def test_mixed_events_of_any_shape_never_raise(events, c):
    body = b"".join(frame(e) for e in events) + b"0\r\n\r\n"
    out = parse(body, c)
    if any(b"\xff" in e or b"[[[" in e or b"7}" in e or b"[5]" in e or b'"x"' in e for e in events):
        assert out.error in (ERR_PROTOCOL, ERR_SERVER)


@FAST
@given(st.text(alphabet="0123456789abcdefABCDEF-+xX; ", min_size=1, max_size=40), cuts)
def test_any_chunk_size_line_is_handled(size_line, c):
    body = size_line.encode() + b"\r\n" + GOOD[1] + b"\r\n0\r\n\r\n"
    parse(body, c)


def test_chunk_size_of_ten_to_the_thirty_is_a_protocol_error():
    for size in (b"%x" % 10**30, b"1" * 31, b"f" * 10_000):
        out = parse(size + b"\r\n" + GOOD[1] + b"\r\n0\r\n\r\n", [7])
        assert out.error == ERR_PROTOCOL and "chunk size" in out.error_detail
    assert dechunk([b"-10\r\nabc\r\n0\r\n\r\n"], True).error  # a negative size cannot walk backwards


def test_deeply_nested_json_is_a_protocol_error():
    out = parse(frame(b"data: " + b"[" * 200_000 + b"\n\n") + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n", [])
    assert out.error == ERR_PROTOCOL and "not JSON" in out.error_detail


def test_an_event_of_100_mb_is_refused_with_bounded_memory():
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    event = b"data: {\"x\":\"" + b"a" * (100 << 20) + b"\"}\n\n"
    pieces = [event[i:i + (1 << 20)] for i in range(0, len(event), 1 << 20)]
    raw = RawStream(send_ns=1, headers_ns=2, end_ns=3, status=200, chunked=False,
                    header_bytes=HEAD.split(b"\r\ntransfer")[0], recv_ns=[3] * len(pieces), recv_bytes=pieces)
    del event
    out = parse_openai_stream(raw)
    assert out.error == ERR_PROTOCOL and "longer than" in out.error_detail
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) / 1024
    assert grew_mb < 800  # a few copies of the body at most, never unbounded (ru_maxrss is in KiB)
    events, body = iter_events([1], [b"data: " + b"b" * (MAX_EVENT + 10)], False)
    assert body.error and events == []


def test_transport_body_cap():
    end = BodyEnd(parse_head(HEAD), b"")
    mb = b"x" * (1 << 20)
    done = [end.feed(mb) for _ in range((MAX_BODY >> 20) + 1)]
    assert done[-1] and not any(done[:-1]) and end.too_long  # a body past the cap ends the response


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                        st.sampled_from(["choices", "delta", "content", "usage", "error", "text", "finish_reason",
                                         "completion_tokens", "id", "tool_calls"]), kids, max_size=4),
                    max_leaves=12), cuts)
def test_json_of_any_shape_is_read_or_refused(obj, c):
    body = frame(b"data: " + json.dumps(obj).encode() + b"\n\n") + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    parse(body, c)


def test_connect_timeout_in_both_transports():
    """A listener whose accept queue is full drops new SYNs: the connection never completes."""
    import socket
    import time

    from backends.http1 import Endpoint, Timeouts
    from backends.http_mux import Feed, Item, Mux
    from backends.http_stream import Connection
    from backends.records import ERR_TIMEOUT_CONNECT

    class One(Feed):
        def __init__(self):
            self.left = 1

        def due(self, now):
            self.left, out = 0, [Item(0, 0, b"GET / HTTP/1.1\r\n\r\n", now + 5 * 10**9)] * self.left
            return out

        def exhausted(self):
            return self.left == 0

    with socket.create_server(("127.0.0.1", 0), backlog=0) as ls:
        fill = [socket.socket() for _ in range(3)]
        for s in fill:
            s.setblocking(False)
            s.connect_ex(ls.getsockname())
        time.sleep(0.2)
        ep = Endpoint("127.0.0.1", ls.getsockname()[1], "")
        limits = Timeouts(connect_s=0.3, ttft_s=5, idle_s=5)
        raw = RawStream()
        Connection(ep, timeouts=limits).stream(b"GET / HTTP/1.1\r\n\r\n", raw, time.perf_counter_ns() + 5 * 10**9)
        got: list[RawStream] = []
        mux = Mux(ep, 1, 5.0, lambda item, r: got.append(r), limits)
        try:
            mux.run(One())
        finally:
            mux.close()
            for s in fill:
                s.close()
    for r in (raw, got[0]):
        assert r.error == ERR_TIMEOUT_CONNECT and r.error_detail == "no connection in 0.3 s"
