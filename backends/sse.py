"""The one stream parser: HTTP chunked framing and Server-Sent Events, applied after the request.

The hot path (backends/http_mux.py, backends/http_stream.py) keeps each recv()'s bytes and its
arrival time. Here, after the request ended, we undo the chunked transfer encoding, split the SSE
stream into events and give every event the arrival time of the recv() that delivered its *last*
byte (the blank line that terminates it): that is the moment a client could first have acted on
the event.

SSE rules applied (WHATWG "event stream interpretation"): events end at a blank line; lines ending
in CRLF, LF or CR; lines starting with ':' are comments (keep-alives) and dropped; `data:` lines
of one event are joined with '\n' (one leading space after the colon removed); an event with no
data line is dropped; bytes after the last blank line (an unterminated event) are dropped.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple

from backends.http1 import header_value
from backends.records import ERR_PROTOCOL, HTTP_ERRORS, ParsedStream, RawStream

# Two consecutive line endings (CRLF, lone CR or LF) = the blank line that ends an event.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_SPLIT = re.compile(rb"\r\n|\r|\n")
_ENDS_EVENT = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)\Z")
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")  # a chunk size: 16 hex digits already exceed any body we keep
MAX_EVENT = 16 << 20  # an SSE event longer than this is a protocol error (real events are < 100 kB)


class SSEEvent(NamedTuple):
    t_ns: int  # arrival time of the recv() that completed the event
    data: bytes  # the joined data field
    recv_index: int  # which recv() completed it (several events from one recv() = a burst)
    event: bytes  # the `event:` field, b"" when absent


class Body(NamedTuple):
    data: bytes  # the payload with transfer framing removed
    recv_of: list[int]  # payload offset -> index of the recv() holding that byte, as segment table
    seg_starts: list[int]  # payload offsets where each segment of `recv_of` starts
    complete: bool  # chunked: the terminating zero-size chunk was seen; plain: always True
    error: str  # "" or why the framing is malformed (one line)


def dechunk(recv_bytes: list[bytes], chunked: bool) -> Body:
    """Join the recv() pieces of a body and remove chunked framing, keeping byte provenance.

    Provenance is kept as segments: payload bytes [seg_starts[k], seg_starts[k+1]) came from
    recv() number recv_of[k]. Malformed framing gives `error` (why) with what was decoded before it.
    """
    seg_starts: list[int] = []
    recv_of: list[int] = []
    if not chunked:
        pos = 0
        for i, piece in enumerate(recv_bytes):
            if piece:
                seg_starts.append(pos)
                recv_of.append(i)
                pos += len(piece)
        return Body(b"".join(recv_bytes), recv_of, seg_starts, True, "")

    raw = b"".join(recv_bytes)
    ends: list[int] = []  # raw offset where each recv() ends
    acc = 0
    for piece in recv_bytes:
        acc += len(piece)
        ends.append(acc)

    out: list[bytes] = []
    out_len = 0
    i = 0
    complete = False
    error = ""
    n = len(raw)
    while i < n:
        j = raw.find(b"\r\n", i)
        if j < 0:
            break
        size_field = raw[i:min(j, i + 64)].split(b";", 1)[0].strip()
        if j - i > 4096 or not _HEX.fullmatch(size_field):
            error = f"malformed chunked framing: chunk size line {raw[i:min(j, i + 40)]!r}"
            break
        size = int(size_field, 16)
        if size == 0:
            complete = True
            break
        start = j + 2
        end = min(start + size, n)
        # Split this chunk's payload at recv() boundaries to keep each byte's provenance.
        k = bisect_right(ends, start)
        s = start
        while s < end:
            e = min(end, ends[k])
            seg_starts.append(out_len)
            recv_of.append(k)
            out.append(raw[s:e])
            out_len += e - s
            s = e
            k += 1
        if start + size > n:
            break  # body cut mid-chunk
        i = start + size + 2
    return Body(b"".join(out), recv_of, seg_starts, complete, error)


def iter_events(recv_ns: list[int], recv_bytes: list[bytes], chunked: bool) -> tuple[list[SSEEvent], Body]:
    """Split a recorded body into SSE events, each stamped with its arrival time."""
    body = dechunk(recv_bytes, chunked)
    data = body.data
    events: list[SSEEvent] = []
    start = 0
    for m in _EVENT_END.finditer(data):
        if m.start() - start > MAX_EVENT:
            return events, body._replace(error=f"an SSE event longer than {MAX_EVENT >> 20} MiB")
        block = data[start : m.start()]
        last_byte = m.end() - 1
        start = m.end()
        ev = _parse_block(block)
        if ev is None:
            continue
        seg = bisect_right(body.seg_starts, last_byte) - 1
        ri = body.recv_of[seg]
        events.append(SSEEvent(recv_ns[ri], ev[0], ri, ev[1]))
    if len(data) - start > MAX_EVENT and not body.error:
        body = body._replace(error=f"an SSE event longer than {MAX_EVENT >> 20} MiB")
    return events, body


def ends_inside_event(data: bytes) -> bool:
    """Whether an event stream's bytes stop inside an event (bytes after its last blank line)."""
    return bool(data) and data.strip(b"\r\n") != b"" and _ENDS_EVENT.search(data[-4:]) is None


def _parse_block(block: bytes) -> tuple[bytes, bytes] | None:
    data_lines: list[bytes] = []
    event = b""
    for line in _LINE_SPLIT.split(block):
        if not line or line[:1] == b":":
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value
    if not data_lines:
        return None
    return b"\n".join(data_lines), event


def json_events(events: list[SSEEvent], out: ParsedStream) -> Iterator[tuple[SSEEvent, dict | None]]:
    """Each event's data decoded as a JSON object; `[DONE]` gives (event, None). An event that is
    not JSON marks `out` with a protocol error (the first one wins) and is skipped."""
    for ev in events:
        if ev.data == b"[DONE]":
            yield ev, None
            continue
        try:
            obj = json.loads(ev.data)
        except (ValueError, RecursionError):  # deep nesting: json's C scanner stops with RecursionError
            if not out.error:
                out.error, out.error_detail = ERR_PROTOCOL, f"event is not JSON: {ev.data[:80]!r}"
            continue
        if isinstance(obj, dict):
            yield ev, obj


NOT_STREAMING = "the endpoint does not stream (response Content-Type {ctype})"


def stream_events(raw: RawStream, out: ParsedStream, not_stream: str = NOT_STREAMING) -> tuple[list[SSEEvent], Body] | None:
    """The events of a recorded response, or None when there are none to read: no response head,
    a whole non-2xx response (its class is already in `out`), or a head whose Content-Type is not
    text/event-stream (then `out` gets a protocol error: `not_stream` with `{ctype}` filled in).
    Malformed chunked framing marks `out` too; the events decoded before it are still returned."""
    if not raw.headers_ns or raw.error in HTTP_ERRORS:
        return None
    ctype = header_value(raw.header_bytes, "content-type")
    if not raw.error and "text/event-stream" not in ctype:
        out.error, out.error_detail = ERR_PROTOCOL, not_stream.format(ctype=ctype or "missing")
        return None
    events, body = iter_events(raw.recv_ns, raw.recv_bytes, raw.chunked)
    if body.error and not out.error:
        out.error, out.error_detail = ERR_PROTOCOL, body.error
    return events, body


def check_stream_end(raw: RawStream, body: Body, out: ParsedStream, end_marker: bool = False) -> None:
    """What a stream must have had, checked once it is read: its last chunk (chunked bodies) and
    some generated content, or else an explicit end marker (`end_marker`: OpenAI's [DONE])."""
    if not out.error and raw.chunked and not body.complete:
        out.error, out.error_detail = ERR_PROTOCOL, "stream ended without its final chunk"
    if not out.error and not raw.error and ends_inside_event(body.data):
        out.error, out.error_detail = ERR_PROTOCOL, "stream ended inside an event (truncated)"
    if not out.error and not end_marker and not out.content_ns:
        out.error, out.error_detail = ERR_PROTOCOL, "stream carried no generated content"
