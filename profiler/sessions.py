"""The session driver: multi-turn conversations on the load generator (used only with --turns > 1).

Closed loop over SESSIONS: each of a worker's `streams` threads owns one blocking keep-alive
connection (backends/http_stream.py, or the codec's own transport) and runs whole sessions on
it, one after another: turn 0 is the prebuilt payload; after each answer the thread parses the
response (codec.parse, while no byte of its own is in flight), appends the answer text as an
assistant turn, sleeps the next turn's think time, appends the next user turn and sends the
whole conversation on the same connection. So the point's concurrency is the number of sessions
in flight, and a turn's input grows by the previous answer and the new user text.

A failed turn ends its session (the later turns are not sent: there is no answer to build them
on). Every finished turn goes to the worker's spool like any request; its id is
`session * turns + turn`.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

from backends.records import RawStream
from profiler.loadgen import PointJob, _deadline, _join_all, _sleep_until, open_connection, split_closed
from workloads.requests import RequestSpec


def is_sessions(requests: list[RequestSpec]) -> bool:
    return bool(requests) and requests[0].session >= 0


def group(requests: list[RequestSpec]) -> list[list[RequestSpec]]:
    """The sessions of a request list (session-major order), each in turn order."""
    out: dict[int, list[RequestSpec]] = {}
    for r in requests:
        out.setdefault(r.session, []).append(r)
    return [sorted(turns, key=lambda r: r.turn) for turns in out.values()]


def split_sessions(requests: list[RequestSpec], concurrency: int, workers: int):
    """loadgen.split_closed over whole sessions: (streams, the worker's requests) per worker."""
    return [(streams, [r for s in part for r in s]) for streams, part in split_closed(group(requests), concurrency,
                                                                                    workers)]


def run_sessions(job: PointJob, keep) -> int:
    """Run a worker's sessions with `job.streams` threads; returns the thread count."""
    sessions = group(job.requests)
    payload = {r.index: p for r, p in zip(job.requests, job.payloads, strict=True)}
    counter = itertools.count()  # next() is atomic under the GIL
    timeout = min(60.0, job.request_timeout_s)

    def stream() -> None:
        conn = open_connection(job.codec, job.endpoint, timeout)
        try:
            conn.open()
        except OSError:
            conn.close()
        _sleep_until(job.start_ns)
        try:
            while (i := next(counter)) < len(sessions):
                if job.stop_ns and time.perf_counter_ns() >= job.stop_ns:
                    return
                _run_session(job, conn, sessions[i], payload[sessions[i][0].index], keep)
        finally:
            conn.close()

    threads = [threading.Thread(target=stream, daemon=True) for _ in range(min(job.streams, len(sessions)))]
    for t in threads:
        t.start()
    _join_all(threads, job)
    return len(threads)


def _run_session(job: PointJob, conn, turns: list[RequestSpec], first_payload, keep) -> None:
    first = turns[0]
    history = list(first.messages) or [("user", first.prompt)]
    for r in turns:
        if r.turn == 0:
            data = first_payload
        else:
            time.sleep(r.think_s)
            history.append(("user", r.prompt))
            data = job.codec.encode(replace(r, prompt="\n".join(t for _, t in history), messages=tuple(history)))
        raw = RawStream()
        conn.stream(data, raw, _deadline(job, time.perf_counter_ns()))
        keep.add(r.index, raw.send_ns, raw)
        parsed = job.codec.parse(raw)
        if parsed.error:
            return
        history.append(("assistant", parsed.text))
