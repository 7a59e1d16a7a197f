"""Load generator: worker processes, one thread per stream, a shared monotonic clock.

Closed loop: exactly N requests in flight; each stream thread sends its next request as soon as
the previous one ends. Open loop: requests leave at scheduled arrival times (Poisson or
constant); a pool of stream threads picks them up, and the wait between schedule and send is
recorded (client queue time) so an under-delivered rate is visible, never hidden.

Why threads on blocking sockets: the per-chunk work is a recv() (GIL released), a timestamp and
two appends; nothing else competes for the interpreter while the point runs, because parsing is
deferred until the load ends. Streams are spread across worker processes so no single
interpreter is the bottleneck. Every loop is bounded: by the request count or the duration, and
each request by its deadline.

Where finished streams go: in a sweep, each is appended as it ends to the worker's spool file
(`profiler.recorder.Spool`: one write, no parsing), which a recorder process parses into the run
folder while the point runs, so a worker's memory stays flat however long the point. Without a
spool (`PointJob.spool` empty) they are kept and parsed after the load into the WorkerResult.
"""

from __future__ import annotations

import gc
import itertools
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe

from backends.codec import Codec, OwnTransportCodec, Payload, Transport
from backends.http1 import Endpoint, Timeouts
from backends.http_mux import Feed, Item, make_mux
from backends.http_stream import Connection
from backends.laghist import LagHistogram
from backends.records import RawStream, RequestRecord
from profiler.recorder import Batch, RecordJob, Spool, close_processes, name_process, parse_streams
from profiler.stopping import STOP_DECIDED, Outcomes, die_with_parent
from workloads.requests import RequestSpec

LAG_PROBE_S = 0.005
START_MARGIN_NS = 300_000_000  # workers get the job, start threads and connect before this
# Client and server CPU of one full TLS handshake on loopback, with room: 256 took 0.44 s here
# (benchmarks/truth/README.md, HTTPS). A worker's handshakes run one after another on its core.
TLS_HANDSHAKE_NS = 4_000_000
OPEN_AHEAD = 8  # an open loop connects this many before its start; the rest as its arrivals need them


@dataclass
class PointJob:
    """One worker's share of one sweep point."""

    point: int
    worker: int
    endpoint: Endpoint
    codec: Codec
    requests: list[RequestSpec]
    payloads: list[Payload]  # codec.encode() of each request
    total_specs: int  # specs across all workers (makes cycled request ids unique)
    streams: int = 0  # closed loop: streams this worker runs
    arrivals_ns: list[int] | None = None  # open loop: absolute send times, parallel to requests
    max_in_flight: int = 4096
    start_ns: int = 0
    stop_ns: int = 0  # duration mode: no request is sent at or after this time (0 = no limit)
    cycle: bool = False  # duration mode: reuse the requests until stop_ns
    request_timeout_s: float = 600.0
    drain_s: float = 30.0  # duration mode: how long in-flight requests may finish after stop_ns
    tokenizer_path: str = ""
    transport: str = "epoll"  # "epoll" (one loop per worker) | "threads" (one thread per stream)
    spool: str = ""  # append finished streams to this file (profiler.recorder) instead of keeping them
    timeouts: Timeouts | None = None  # per phase; None: every wait is min(60 s, request_timeout_s)
    max_error_rate: float | None = None  # error policy (profiler.stopping); None = off
    error_window: int = 100
    live: bool = False  # watched while it runs: the spool is written at normal priority, not SCHED_IDLE


@dataclass
class WorkerResult:
    worker: int
    records: list[RequestRecord]
    chunk_request: list[int] = field(default_factory=list)
    chunk_t_ns: list[int] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    chunk_content: list[bool] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    lag_us: LagHistogram = field(default_factory=LagHistogram)  # loop lag samples (µs), bounded
    threads: int = 0
    opening_at_start: int = 0  # connections still opening (TLS handshakes) at the point's start
    kernel_stamps: bool = False  # chunks stamped with the kernel's arrival time (backends/rxstamp.py)
    spooled: int = 0  # streams appended to the job's spool
    error: str = ""


def _sleep_until(t_ns: int) -> None:
    delta = t_ns - time.perf_counter_ns()
    if delta > 0:
        time.sleep(delta / 1e9)


_PROGRESS: tuple = ()  # (shared array, worker slot) in a worker process: requests finished so far
_STOP = None  # in a worker process: the pool's shared stop byte (profiler.stopping)


def _stopped() -> bool:
    return bool(_STOP is not None and _STOP[0])


def _outcomes(job: PointJob) -> Outcomes:
    return Outcomes(_STOP, job.max_error_rate, job.error_window)


def _timeouts(job: PointJob) -> Timeouts:
    if job.timeouts is not None:
        return job.timeouts
    t = min(60.0, job.request_timeout_s)
    return Timeouts(t, t, t)


def _lag_probe(stop: threading.Event, out: LagHistogram, keep: _Keep) -> None:
    """How late a sleeping thread wakes: the delay a stream thread's timestamp can suffer.

    It also publishes the finished-request count for the parent's progress display (one writer).
    """
    perf = time.perf_counter_ns
    step = int(LAG_PROBE_S * 1e9)
    i = 0
    while not stop.is_set():
        due = perf() + step
        time.sleep(LAG_PROBE_S)
        out.append((perf() - due) // 1000)
        i += 1
        if _PROGRESS and i % 20 == 0:
            _PROGRESS[0][_PROGRESS[1]] = keep.count


class _Keep:
    """Where a finished stream goes: `keep.add(request id, scheduled_ns, raw)`."""

    def __init__(self, job: PointJob):
        self.spool = Spool(job.spool, idle=not job.live) if job.spool else None
        self.raws: list[tuple[int, int, RawStream]] = []
        self.add = self.spool.add if self.spool is not None else self._append

    def _append(self, rid: int, scheduled_ns: int, raw: RawStream) -> None:
        self.raws.append((rid, scheduled_ns, raw))

    @property
    def count(self) -> int:
        return self.spool.frames if self.spool is not None else len(self.raws)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def run_job(job: PointJob) -> WorkerResult:
    """Run one worker's share of a point: finished streams go to the job's spool, or are parsed
    after the load when it has none."""
    keep = _Keep(job)
    try:
        result = _run_job(job, keep)
    finally:
        keep.close()
    # Counted once the spool is closed: while its writer thread runs, a stream being written is
    # neither queued nor yet counted as written.
    result.spooled = keep.spool.written if keep.spool is not None else 0
    return result


def _run_job(job: PointJob, keep: _Keep) -> WorkerResult:
    lag = LagHistogram()
    # A garbage collection walks every list of recorded chunks: milliseconds with nobody reading
    # the sockets. Nothing cyclic is made while the load runs, so collect after it instead.
    gc.collect()
    gc.disable()
    cpu0 = time.process_time()
    wall0 = time.perf_counter_ns()
    sessions = bool(job.requests) and job.requests[0].session >= 0  # multi-turn: profiler/sessions.py
    if sessions or job.transport == "threads" or isinstance(job.codec, OwnTransportCodec):
        stop_probe = threading.Event()
        probe = threading.Thread(target=_lag_probe, args=(stop_probe, lag, keep), daemon=True)
        probe.start()
        if sessions:
            from profiler.sessions import run_sessions

            nthreads = run_sessions(job, keep)
        else:
            nthreads = _run_closed(job, keep) if job.arrivals_ns is None else _run_open(job, keep)
        stop_probe.set()
        probe.join(1.0)
        opening, kernel = 0, False
    else:
        nthreads, opening, kernel = _run_mux(job, keep, lag)
    cpu = time.process_time() - cpu0
    wall = (time.perf_counter_ns() - max(wall0, job.start_ns)) / 1e9
    gc.enable()
    result = WorkerResult(job.worker, [], cpu_s=cpu, wall_s=wall, lag_us=lag, threads=nthreads,
                          opening_at_start=opening, kernel_stamps=kernel)
    if keep.raws:
        _parse_all(job, keep.raws, result)
    return result


def open_connection(codec: Codec, endpoint: Endpoint, read_timeout: float,
                    timeouts: Timeouts | None = None) -> Transport:
    """The codec's own transport when it has one (Triton gRPC), else the lean HTTP reader."""
    if isinstance(codec, OwnTransportCodec):
        return codec.connection(read_timeout)
    return Connection(endpoint, read_timeout=read_timeout, timeouts=timeouts)


def _deadline(job: PointJob, send_ns: int) -> int:
    d = send_ns + int(job.request_timeout_s * 1e9)
    if job.stop_ns:
        d = min(d, job.stop_ns + int(job.drain_s * 1e9))
    return d


class _ClosedFeed(Feed):
    """Exactly `streams` requests in flight: the next one is offered when one finishes."""

    def __init__(self, job: PointJob):
        self.job = job
        self.i = 0
        self.free = job.streams
        self.n = len(job.requests)

    def _more(self, now: int) -> bool:
        if self.job.stop_ns and now >= self.job.stop_ns or _stopped():
            return False
        return self.job.cycle or self.i < self.n

    def due(self, now: int) -> list[Item]:
        if now < self.job.start_ns:
            return []
        out = []
        while self.free > 0 and self._more(now):
            k = self.i % self.n
            rid = self.job.requests[k].index + (self.i // self.n) * self.job.total_specs
            out.append(Item(rid, 0, self.job.payloads[k], _deadline(self.job, now)))
            self.i += 1
            self.free -= 1
        return out

    def next_ns(self) -> int | None:
        return self.job.start_ns if self.i == 0 else None

    def finished(self, item: Item) -> None:
        self.free += 1

    def exhausted(self) -> bool:
        return not self._more(time.perf_counter_ns())


class _OpenFeed(Feed):
    """Requests offered at their scheduled arrival times."""

    def __init__(self, job: PointJob):
        self.job = job
        self.i = 0
        self.arr = job.arrivals_ns or []

    def due(self, now: int) -> list[Item]:
        out = []
        job = self.job
        if _stopped():
            self.i = len(self.arr)
        while self.i < len(self.arr) and self.arr[self.i] <= now:
            sched = self.arr[self.i]
            if job.stop_ns and sched >= job.stop_ns:
                self.i = len(self.arr)
                break
            out.append(Item(job.requests[self.i].index, sched, job.payloads[self.i], _deadline(job, sched)))
            self.i += 1
        return out

    def next_ns(self) -> int | None:
        return self.arr[self.i] if self.i < len(self.arr) else None

    def exhausted(self) -> bool:
        return self.i >= len(self.arr)


def _run_mux(job: PointJob, keep: _Keep, lag: LagHistogram) -> tuple[int, int, bool]:
    """Both loops on one epoll thread (backends/http_mux.py). `lag` receives the loop's busy
    time per iteration (µs): how late a request sent in that iteration can be. Returns (threads
    used, connections still opening at the start, whether chunks carry the kernel's stamps)."""
    closed = job.arrivals_ns is None
    feed = _ClosedFeed(job) if closed else _OpenFeed(job)
    if closed and (not job.requests or job.streams <= 0):
        return 0, 0, False

    add = keep.add
    saw = _outcomes(job).saw

    def done(item: Item, raw: RawStream) -> None:
        add(item.rid, item.sched_ns or raw.send_ns, raw)
        saw(raw.error)
        feed.finished(item)
        if _PROGRESS:
            _PROGRESS[0][_PROGRESS[1]] = keep.count

    max_conns = job.streams if closed else job.max_in_flight
    mux = make_mux(job.endpoint, max_conns, min(60.0, job.request_timeout_s), done, _timeouts(job))
    try:
        mux.open_conns(ahead_conns(closed, job.streams, job.max_in_flight))
        opening = mux.settle(job.start_ns)
        mux.run(feed, _stopped if _STOP is not None else None)
    finally:
        mux.close()
        lag.extend(mux.busy_us)
    return 1, opening, mux.kernel_stamps


def ahead_conns(closed: bool, streams: int, max_in_flight: int) -> int:
    """Connections a worker opens before its start: a closed loop's streams, a few for an open loop."""
    return streams if closed else min(OPEN_AHEAD, max_in_flight)


def opening_allowance_ns(endpoint: Endpoint, conns_per_worker: int) -> int:
    """Time added before a point's start so that the TLS handshakes of the connections each worker
    opens ahead end before it: they run one after another on the worker's core, and one left over
    would take that core while the first chunks arrive (plain http: 0)."""
    return conns_per_worker * TLS_HANDSHAKE_NS if endpoint.tls is not None else 0


def _run_closed(job: PointJob, keep: _Keep) -> int:
    n = len(job.requests)
    if n == 0 or job.streams <= 0:
        return 0
    counter = itertools.count()  # next() is atomic under the GIL: the streams share one queue
    timeout = min(60.0, job.request_timeout_s)
    saw = _outcomes(job).saw

    def stream() -> None:
        conn = open_connection(job.codec, job.endpoint, timeout, _timeouts(job))
        try:
            conn.open()  # connect before the start so the first request does not pay for it
        except OSError:
            conn.close()
        _sleep_until(job.start_ns)
        perf = time.perf_counter_ns
        try:
            while True:
                i = next(counter)
                if i >= n and not job.cycle:
                    return
                now = perf()
                if job.stop_ns and now >= job.stop_ns or _stopped():
                    return
                k = i % n
                rid = job.requests[k].index + (i // n) * job.total_specs
                raw = RawStream()
                conn.stream(job.payloads[k], raw, _deadline(job, now))
                keep.add(rid, raw.send_ns, raw)
                saw(raw.error)
        finally:
            conn.close()

    threads = [threading.Thread(target=stream, daemon=True) for _ in range(min(job.streams, n if not job.cycle else job.streams))]
    for t in threads:
        t.start()
    _join_all(threads, job)
    return len(threads)


def _run_open(job: PointJob, keep: _Keep) -> int:
    q: queue.SimpleQueue = queue.SimpleQueue()
    lock = threading.Lock()
    state = {"in_flight": 0}
    threads: list[threading.Thread] = []
    timeout = min(60.0, job.request_timeout_s)
    saw = _outcomes(job).saw

    def stream() -> None:
        conn = open_connection(job.codec, job.endpoint, timeout, _timeouts(job))
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                k, sched = item
                raw = RawStream()
                conn.stream(job.payloads[k], raw, _deadline(job, sched))
                keep.add(job.requests[k].index, sched, raw)
                saw(raw.error)
                with lock:
                    state["in_flight"] -= 1
        finally:
            conn.close()

    def spawn() -> None:
        t = threading.Thread(target=stream, daemon=True)
        t.start()
        threads.append(t)

    for _ in range(min(OPEN_AHEAD, job.max_in_flight, len(job.requests))):
        spawn()
    for k, sched in enumerate(job.arrivals_ns or ()):
        if job.stop_ns and sched >= job.stop_ns or _stopped():
            break
        _sleep_until(sched)
        with lock:
            state["in_flight"] += 1
            busy = state["in_flight"]
        if busy > len(threads) and len(threads) < job.max_in_flight:
            spawn()
        q.put((k, sched))
    for _ in threads:
        q.put(None)
    _join_all(threads, job)
    return len(threads)


def _join_all(threads: list[threading.Thread], job: PointJob) -> None:
    # Bounded: each request has a deadline and each recv() a timeout, so this ends.
    limit = time.monotonic() + job.request_timeout_s + 120.0
    for t in threads:
        t.join(max(0.0, limit - time.monotonic()))


def _parse_all(job: PointJob, raws: list, result: WorkerResult) -> None:
    """Parse the streams kept in memory (no spool) into the result."""
    out = Batch()
    parse_streams(RecordJob.of(job), raws, out)
    result.records = out.records
    result.chunk_request, result.chunk_t_ns = out.chunk_request, out.chunk_t_ns
    result.chunk_tokens, result.chunk_content = out.chunk_tokens, out.chunk_content


def _worker_main(pipe: Pipe, worker: int, progress, stop=None) -> None:
    global _PROGRESS, _STOP
    import signal

    _PROGRESS = (progress, worker)
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it sets `stop`, we end the point
    die_with_parent()
    name_process(f"inferprof-w{worker}")
    # Hand the GIL over sooner when a recv() returns while another thread runs Python code.
    sys.setswitchinterval(0.0005)
    pipe.send("ready")  # imports are done: a point's start time can now be met
    while True:
        try:
            job = pipe.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        progress[worker] = 0
        try:
            result = run_job(job)
        except Exception as e:  # reported to the parent, which keeps the points already measured
            result = WorkerResult(job.worker, [], error=f"{type(e).__name__}: {e}")
        try:
            pipe.send(result)
        except (BrokenPipeError, OSError):
            return


def default_workers(mode: str, load: float) -> int:
    """Sized to the machine: ~64 streams (or ~100 req/s) per worker, at most one per core."""
    cores = os.cpu_count() or 1
    need = math.ceil(load / 64) if mode == "concurrency" else math.ceil(load / 100)
    return max(1, min(cores, need))


class WorkerPool:
    """Persistent worker processes (spawned once per sweep, reused by every point). The sweep
    drives it through `run`, `request_stop`, `close`, `stop`, `start_margin_ns`, `workers_for` and
    `point_facts`; profiler.raypool.RayPool offers the same over Ray actors."""

    start_margin_ns = START_MARGIN_NS  # a point starts this long after its jobs are handed out

    def __init__(self, n: int):
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list = []
        self.progress = ctx.Array("q", n, lock=False)
        self.stop = ctx.Array("b", 1, lock=False)  # why the point must stop (profiler.stopping), 0 = run
        for w in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(child, w, self.progress, self.stop), daemon=True,
                            name=f"inferprof-worker-{w}")
            p.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(p)
        for w, pipe in enumerate(self.pipes):  # bounded: a worker that cannot start is an error
            if not pipe.poll(60) or pipe.recv() != "ready":
                self.close()
                raise RuntimeError(f"load generator worker {w} did not start")

    def __len__(self) -> int:
        return len(self.procs)

    def run(self, jobs: list[PointJob], timeout_s: float, on_progress=None) -> list[WorkerResult]:
        """Run one point's jobs; `on_progress(finished_requests)` is called a few times a second."""
        for job in jobs:
            self.progress[job.worker] = 0
            self.pipes[job.worker].send(job)
        results: list[WorkerResult] = []
        limit = time.monotonic() + timeout_s
        for job in jobs:
            pipe = self.pipes[job.worker]
            while on_progress and time.monotonic() < limit and not pipe.poll(0.5):
                on_progress(sum(self.progress[j.worker] for j in jobs))
            if not pipe.poll(max(0.0, limit - time.monotonic())):
                results.append(WorkerResult(job.worker, [], error="worker did not finish in time"))
                self.procs[job.worker].kill()
                continue
            try:
                results.append(pipe.recv())
            except (EOFError, OSError):
                results.append(WorkerResult(job.worker, [], error="worker process died"))
        return results

    def workers_for(self, mode: str, load: float) -> int:
        """Workers a point uses when --workers is not given."""
        return default_workers(mode, load)

    def point_facts(self) -> dict:
        """points.jsonl additions of the last point (none for local workers)."""
        return {}

    def request_stop(self) -> None:
        """End the running point early (a decided capacity probe): workers send nothing more and
        cancel what is in flight, as for any stop (profiler.stopping)."""
        if not self.stop[0]:
            self.stop[0] = STOP_DECIDED

    def close(self) -> None:
        close_processes(self.pipes, self.procs)


def split_closed(requests: list[RequestSpec], concurrency: int, workers: int) -> list[tuple[int, list[RequestSpec]]]:
    """Streams and requests per worker: streams as even as possible, requests in proportion."""
    workers = max(1, min(workers, concurrency))
    streams = [concurrency // workers + (1 if w < concurrency % workers else 0) for w in range(workers)]
    out = []
    start = 0
    n = len(requests)
    acc = 0
    for s in streams:
        acc += s
        end = round(n * acc / concurrency)
        out.append((s, requests[start:end]))
        start = end
    return out


def split_open(requests: list[RequestSpec], arrivals_ns: list[int], workers: int) -> list[tuple[list[RequestSpec], list[int]]]:
    """Round-robin the arrival schedule across workers."""
    workers = max(1, min(workers, len(requests)))
    return [(requests[w::workers], arrivals_ns[w::workers]) for w in range(workers)]
