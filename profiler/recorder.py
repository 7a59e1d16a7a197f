"""Records leave the worker processes while a point runs: a spool file per worker, a recorder per worker.

Worker side (the hot loop): `Spool.add(rid, scheduled_ns, raw)` queues each finished stream as it
finishes (one append: no encoding, no write, no parsing in the loop). A writer thread of the worker,
at Linux SCHED_IDLE, encodes each as one binary frame and appends it to the worker's spool, one
write() per stream, no fsync. The RawStream is then dropped, so a worker's memory does not grow
with the length of the point. A spool is a series of segment files of about `SEGMENT_BYTES`: the
recorder deletes each one once it is parsed and the worker has moved on to the next, so the disk
(and the page cache: most segments go before their pages are ever written back) holds only the
backlog. Freeing parsed bytes in place instead (fallocate PUNCH_HOLE) stalled the worker's write()
for up to 24 ms: on ext4 the punch writes back and locks the file being appended to.

Recorder side: one process per worker (`RecorderPool`), started with the workers and reused by every
point. While the point runs, a thread at SCHED_IDLE (it only gets a core nobody else wants) tails
the spool: every `FLUSH_S` it parses the new frames with the codec, exactly as the worker did after
the load before (`parse_streams`), and appends them to the run folder (`RunWriter.add_records`,
parts named by worker). When the point's workers have all returned, the recorder's main thread
(normal priority: the load is over) parses what is left, deletes the spool and answers with a
`RecordSummary`. A crash loses only the requests finished in the last few seconds; the spool
segments of a point that never finished stay in `.spool/` of the run folder.

Frame: `_HEAD` (magic, payload length), then the stream's fields and its recv() times and pieces in
one `marshal` payload (one C call each way; read back by the interpreter that wrote it). A frame cut
by a crash is recognised by its length and ignored.
"""

from __future__ import annotations

import marshal
import os
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from backends.records import CONNECT_ERRORS, ERR_CANCELLED, ERR_TIMEOUT, RawStream, RequestRecord

SPOOL_DIR = ".spool"  # in the run folder; emptied as points finish
# How often a recorder appends the requests finished since its last part (seconds).
FLUSH_S = float(os.environ.get("INFERPROF_RECORD_FLUSH_S", "2.0"))
READ_BYTES = 8 << 20  # spool bytes read per step: bounds a recorder's memory
PART_BYTES = 32 << 20  # spool bytes parsed into one part at most (a part's rows stay bounded)
SEGMENT_BYTES = 16 << 20  # a worker starts a new spool segment after this many bytes
WRITE_EVERY_S = 0.01  # a worker's spool writer wakes this often to write what finished...
WRITE_IDLE_S = 0.2  # ...backing off to this while nothing finishes

_MAGIC = b"IPS2"
_HEAD = struct.Struct("<4sQ")  # magic, length of the marshal payload that follows


def spool_path(run_dir: str | os.PathLike, point: int, worker: int) -> Path:
    """A worker's spool for a point: the stem of its segments (`segment(spool, k)`)."""
    return Path(run_dir) / SPOOL_DIR / f"point-{point:05d}-w{worker:03d}"


def segment(spool: str | os.PathLike, k: int) -> str:
    return f"{spool}-{k:05d}.bin"


# -- frames ------------------------------------------------------------------------------------

def encode_frame(rid: int, scheduled_ns: int, raw: RawStream) -> bytes:
    """One finished stream as bytes: one C call (marshal) for every field and the recv() pieces.
    gRPC responses (messages, not bytes) are serialized first."""
    pieces = raw.recv_bytes
    if pieces and not isinstance(pieces[0], bytes | bytearray):
        pieces = [p if isinstance(p, bytes | bytearray) else p.SerializeToString() for p in pieces]
    payload = marshal.dumps((rid, scheduled_ns, raw.send_ns, raw.headers_ns, raw.end_ns, raw.status, raw.chunked,
                             raw.header_bytes, raw.recv_ns, pieces, raw.error, raw.error_detail))
    return _HEAD.pack(_MAGIC, len(payload)) + payload


def decode_frame(buf: memoryview, pos: int) -> tuple[tuple[int, int, RawStream] | None, int]:
    """The frame at `pos` as (request id, scheduled_ns, RawStream) and where the next one starts;
    (None, bytes the frame needs) when `buf` holds only part of it. Frames are read by the
    interpreter that wrote them (marshal's format is Python's own)."""
    if len(buf) - pos < _HEAD.size:
        return None, _HEAD.size
    magic, n = _HEAD.unpack_from(buf, pos)
    if magic != _MAGIC:
        raise ValueError(f"spool damaged at frame byte {pos}")
    end = pos + _HEAD.size + n
    if len(buf) < end:
        return None, _HEAD.size + n
    (rid, sched, send, headers, end_ns, status, chunked, head, recv_ns, pieces, err,
     detail) = marshal.loads(buf[pos + _HEAD.size:end])
    raw = RawStream(send_ns=send, headers_ns=headers, end_ns=end_ns, status=status, chunked=chunked,
                    header_bytes=head, recv_ns=recv_ns, recv_bytes=pieces, error=err, error_detail=detail)
    return (rid, sched, raw), end


def decode_frames(data: bytes) -> tuple[list[tuple[int, int, RawStream]], int]:
    """Every whole frame in `data`, and the bytes they take (a trailing partial frame is left)."""
    buf = memoryview(data)
    out, pos = [], 0
    while True:
        item, nxt = decode_frame(buf, pos)
        if item is None:
            return out, pos
        out.append(item)
        pos = nxt


class Spool:
    """A worker's spool for one point: finished streams, one frame each, in segment files of about
    SEGMENT_BYTES.

    `add()` is all the load loop does per finished stream: one append to a queue. A writer thread
    at SCHED_IDLE (it runs when the worker's core would otherwise idle) encodes each stream and
    writes it, one write() per stream. Encoding and writing in the loop itself cost 30-60 us per
    stream, and in a closed loop many streams end together: the first chunks of their successors
    then waited behind those writes (benchmarks/scale/SOAK.md). Thread-safe: the threads transport
    and gRPC finish streams on many threads."""

    def __init__(self, stem: str | os.PathLike, idle: bool = True):
        self.idle = idle  # False while a watcher reads the point live (profiler/capacity.py)
        self.stem = str(stem)
        self.k = 0
        self.fd = self._open(0)
        self.size = 0  # bytes in the current segment
        self.queue: deque[tuple[int, int, RawStream]] = deque()
        self.written = 0
        self.error = ""
        self._lock = threading.Lock()  # one writer at a time: the thread, or close()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="inferprof-spool")
        self._thread.start()

    def add(self, rid: int, scheduled_ns: int, raw: RawStream) -> None:
        self.queue.append((rid, scheduled_ns, raw))

    @property
    def frames(self) -> int:
        """Streams handed to the spool so far."""
        return self.written + len(self.queue)

    def _open(self, k: int) -> int:
        return os.open(segment(self.stem, k), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _run(self) -> None:
        if self.idle:
            idle_priority()
        wait = WRITE_EVERY_S
        while not self._stop.wait(wait):
            queued = len(self.queue)
            try:
                self._write_queued(self._stop)
            except OSError as e:  # close() reports it
                self.error = f"spool: {type(e).__name__}: {e}"
                return
            # Few streams: wake less often (each wake costs the worker a little CPU).
            wait = WRITE_EVERY_S if queued else min(2 * wait, WRITE_IDLE_S)

    def _write_queued(self, stop: threading.Event | None = None) -> None:
        with self._lock:
            for _ in range(len(self.queue)):  # bounded: what is queued now
                if stop is not None and stop.is_set():
                    return
                rid, sched, raw = self.queue.popleft()
                self._write(encode_frame(rid, sched, raw))

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:  # bounded: each write() advances or raises
            view = view[os.write(self.fd, view):]
        self.written += 1
        self.size += len(frame)
        if self.size >= SEGMENT_BYTES:  # the next segment exists only once this one is whole
            fd = self._open(self.k + 1)
            os.close(self.fd)
            self.fd, self.k, self.size = fd, self.k + 1, 0

    def close(self) -> None:
        """After the load: what is still queued is written here; raises if writing failed."""
        self._stop.set()
        self._thread.join(60.0)  # it stops between two streams
        if self.fd < 0:
            return
        try:
            if not self.error and not self._thread.is_alive():
                self._write_queued()
        finally:
            os.close(self.fd)
            self.fd = -1
        if self.error or self._thread.is_alive():
            raise OSError(self.error or "spool writer did not stop")


# -- parsing -----------------------------------------------------------------------------------

@dataclass
class RecordJob:
    """What a point's records need besides the raw streams: one worker's share of one point."""

    point: int
    worker: int
    codec: object
    specs: dict[int, tuple[int, bool, int]]  # request index -> (input_tokens, input_exact, max_tokens)
    total_specs: int  # ids of cycled requests are index + k * total_specs
    cancel_after_ns: int = 0  # a timeout that ends at or after this is the point's end: cancelled
    tokenizer_path: str = ""
    spool: str = ""
    run_dir: str = ""
    answers: dict = field(default_factory=dict)  # eval requests: index -> (item, template); their text is kept
    live: bool = False  # the point is watched while it runs: parse at normal priority

    @classmethod
    def of(cls, job, spool: str = "", run_dir: str = "") -> RecordJob:
        """From a loadgen.PointJob."""
        return cls(point=job.point, worker=job.worker, codec=job.codec,
                   specs={r.index: (r.input_tokens, r.input_exact, r.max_tokens) for r in job.requests},
                   total_specs=job.total_specs,
                   cancel_after_ns=job.stop_ns + int(job.drain_s * 1e9) if job.stop_ns else 0,
                   tokenizer_path=job.tokenizer_path, spool=spool, run_dir=run_dir,
                   live=job.live)


_TOKENIZERS: dict[str, object] = {}


def _tokenizer(path: str):
    if not path:
        return None
    if path not in _TOKENIZERS:
        from workloads.prompts import load_tokenizer

        _TOKENIZERS[path] = load_tokenizer(path)
    return _TOKENIZERS[path]


@dataclass
class Batch:
    """Parsed requests and the columns of their chunks (every event; `content` flags generated text)."""

    records: list[RequestRecord] = field(default_factory=list)
    chunk_request: list[int] = field(default_factory=list)
    chunk_t_ns: list[int] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    chunk_content: list[bool] = field(default_factory=list)
    answers: list[tuple] = field(default_factory=list)  # (request, item, template, text, finish_reason)

    def tables(self, point: int):
        from profiler import runfolder as rf

        return rf.records_table(self.records), rf.chunks_table(
            [point] * len(self.chunk_t_ns), self.chunk_request, self.chunk_t_ns, self.chunk_tokens,
            self.chunk_content)


def parse_streams(job: RecordJob, raws, out: Batch) -> None:
    """Parse finished streams (request id, scheduled_ns, RawStream) into `out`."""
    tok = _tokenizer(job.tokenizer_path)
    for rid, sched, raw in raws:
        input_tokens, input_exact, max_tokens = job.specs[rid % job.total_specs]
        p = job.codec.parse(raw)
        error = p.error
        if error == ERR_TIMEOUT and job.cancel_after_ns and raw.end_ns >= job.cancel_after_ns:
            error = ERR_CANCELLED
        client_tokens = tok.count(p.text) if (tok is not None and p.text) else -1
        out.records.append(RequestRecord(
            point=job.point, request=rid, worker=job.worker, scheduled_ns=sched,
            send_ns=raw.send_ns, headers_ns=raw.headers_ns,
            first_event_ns=p.event_ns[0] if p.event_ns else 0,
            first_content_ns=p.content_ns[0] if p.content_ns else 0,
            last_content_ns=p.content_ns[-1] if p.content_ns else 0,
            end_ns=raw.end_ns, status=raw.status, error=error, error_detail=p.error_detail,
            input_tokens=input_tokens, input_exact=input_exact, max_tokens=max_tokens,
            usage_prompt_tokens=-1 if p.usage_prompt_tokens is None else p.usage_prompt_tokens,
            usage_completion_tokens=-1 if p.usage_completion_tokens is None else p.usage_completion_tokens,
            client_output_tokens=client_tokens, n_events=len(p.event_ns), n_content_chunks=len(p.content_ns),
            bursts=p.bursts, response_id=p.response_id, output_chars=len(p.text),
            first_answer_ns=p.answer_ns,
            reasoning_tokens=-1 if p.usage_reasoning_tokens is None else p.usage_reasoning_tokens,
            reasoning_chunk_tokens=p.reasoning_chunk_tokens,
            usage_cached_tokens=-1 if p.usage_cached_tokens is None else p.usage_cached_tokens,
        ))
        _add_events(out, rid, p)
        if job.answers and (key := job.answers.get(rid % job.total_specs)) is not None:
            out.answers.append((rid, key[0], key[1], p.text, p.finish_reason))


def _add_events(out: Batch, rid: int, p) -> None:
    """Every event of the stream, content-bearing ones flagged with their tokens. Content events are
    a subsequence of all events; where times tie (one recv), which tied row carries the flag does
    not change any figure."""
    content, tokens = p.content_ns, p.content_tokens
    j = 0
    for t in p.event_ns:
        out.chunk_request.append(rid)
        out.chunk_t_ns.append(t)
        if j < len(content) and content[j] == t:
            out.chunk_tokens.append(tokens[j])
            out.chunk_content.append(True)
            j += 1
        else:
            out.chunk_tokens.append(-1)
            out.chunk_content.append(False)
    for k in range(j, len(content)):  # a codec that does not list content events among all events
        out.chunk_request.append(rid)
        out.chunk_t_ns.append(content[k])
        out.chunk_tokens.append(tokens[k])
        out.chunk_content.append(True)


# -- the recorder ------------------------------------------------------------------------------

@dataclass
class RecordSummary:
    """What the parent needs of a worker's recorded requests (the rows themselves are on disk)."""

    worker: int
    requests: int = 0
    connect_errors: int = 0
    max_end_ns: int = 0
    parts: int = 0
    bytes: int = 0  # spool bytes parsed
    flush_lag_s: float = 0.0  # while the point ran: the longest a finished request waited for its part
    error: str = ""



class Tail:
    """Follows one spool from where it left off: parses whole frames, appends them as parts, and
    deletes each segment once it is parsed and the worker has moved on to the next."""

    def __init__(self, job: RecordJob, writer):
        self.job = job
        self.writer = writer
        self.k = 0
        self.fd = os.open(segment(job.spool, 0), os.O_RDONLY)
        self.offset = 0  # in segment k
        self.need = READ_BYTES  # bytes to read at once: more when one frame is larger
        self.pending = Batch()
        self.pending_bytes = 0
        self.done_segments: list[str] = []  # parsed whole; deleted once their rows are on disk
        self.summary = RecordSummary(job.worker)

    def step(self, stop: threading.Event | None = None) -> int:
        """Parse the whole frames written since the last step (about READ_BYTES at most), moving
        to the next segment when this one is done; returns the bytes consumed (0: nothing new, or
        only part of a frame). Stops early when `stop` is set."""
        used = self._read(stop)
        if used or _stopped(stop) or not os.path.exists(segment(self.job.spool, self.k + 1)):
            return used
        # The worker opened the next segment after its last write to this one: finish this one
        # (it may have written more since the read above).
        for _ in range(2 + self._left() // _HEAD.size):  # bounded: each pass eats a frame or ends
            n = self._read(stop)
            used += n
            if not n:
                break
        if _stopped(stop):
            return used
        if self._left():
            raise ValueError(f"spool segment {segment(self.job.spool, self.k)} ends with a cut record")
        os.close(self.fd)
        self.done_segments.append(segment(self.job.spool, self.k))
        self.k += 1
        self.fd = os.open(segment(self.job.spool, self.k), os.O_RDONLY)
        self.offset = 0
        self.need = READ_BYTES
        return used + 1  # progress, even when the next segment is still empty

    def _read(self, stop: threading.Event | None) -> int:
        buf = memoryview(os.pread(self.fd, max(READ_BYTES, self.need), self.offset))
        pos = 0
        while stop is None or not stop.is_set():
            item, nxt = decode_frame(buf, pos)
            if item is None:
                self.need = nxt
                break
            parse_streams(self.job, (item,), self.pending)
            self.pending_bytes += nxt - pos
            pos = nxt
            if self.pending_bytes >= PART_BYTES:
                self.flush()
        self.offset += pos
        return pos

    def _left(self) -> int:
        """Bytes of the current segment not parsed yet."""
        try:
            return max(0, os.fstat(self.fd).st_size - self.offset)
        except OSError:
            return 0

    def _steps(self) -> int:
        """An upper bound of the steps the spool written so far takes."""
        left = self._left()
        k = self.k + 1
        while os.path.exists(segment(self.job.spool, k)) and k < self.k + 1_000_000:
            left += os.path.getsize(segment(self.job.spool, k))
            k += 1
        return 2 * (k - self.k) + 2 + left // _HEAD.size

    def follow(self, stop: threading.Event) -> None:
        """While the point runs: every FLUSH_S, parse what is new and append it as a part."""
        if not self.job.live:  # a watched point needs its records on disk now, not when a core idles
            idle_priority()
        try:
            while not stop.wait(FLUSH_S):
                for _ in range(self._steps()):  # bounded: what is written now
                    if stop.is_set() or not self.step(stop):
                        break
                if not stop.is_set():
                    self.flush(track_lag=True)
        except Exception as e:  # the main thread reports it after the point
            self.summary.error = f"{type(e).__name__}: {e}"

    def drain(self) -> None:
        """After the point: everything left (the worker has finished), then the last part."""
        for _ in range(self._steps()):
            if not self.step():
                break
        self.flush()
        left = self._left()
        if left:
            self.summary.error = f"spool of worker {self.job.worker} ends with {left} bytes of a cut record"
        else:
            self.done_segments.append(segment(self.job.spool, self.k))
            self._delete_done()

    def flush(self, track_lag: bool = False) -> None:
        b = self.pending
        if b.records:
            requests, chunks = b.tables(self.job.point)
            self.writer.add_records(self.job.point, requests, chunks)
            if b.answers:
                self.writer.add_answers(self.job.point, b.answers)
            s = self.summary
            ends = [r.end_ns for r in b.records]
            if track_lag:
                s.flush_lag_s = max(s.flush_lag_s, (time.perf_counter_ns() - min(ends)) / 1e9)
            s.requests += len(b.records)
            s.connect_errors += sum(r.error in CONNECT_ERRORS for r in b.records)
            s.max_end_ns = max(s.max_end_ns, max(ends))
            s.parts += 1
            s.bytes += self.pending_bytes
            self.pending = Batch()
            self.pending_bytes = 0
        self._delete_done()

    def _delete_done(self) -> None:
        """Segments whose every frame is in a part on disk now."""
        while self.done_segments:
            try:
                os.remove(self.done_segments.pop())
            except FileNotFoundError:
                pass

    def close(self) -> None:
        os.close(self.fd)


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def name_process(name: str) -> None:
    """The name `ps`/`top` show for this process (Linux, 15 bytes); nothing elsewhere."""
    try:
        import ctypes
        import ctypes.util

        ctypes.CDLL(ctypes.util.find_library("c") or None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def idle_priority() -> None:
    """This thread only runs on a core nobody else wants (Linux SCHED_IDLE; else the lowest nice)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass


def record_point(job: RecordJob, writer, until_end) -> RecordSummary:
    """Follow `job.spool` until `until_end()` returns (the point's workers are done), then drain it.
    Each spool segment is deleted once every frame in it is on disk."""
    tail = Tail(job, writer)
    stop = threading.Event()
    follower = threading.Thread(target=tail.follow, args=(stop,), daemon=True, name="inferprof-record")
    follower.start()
    try:
        until_end()
    finally:
        stop.set()
        follower.join(60.0)  # it stops between two frames
    if follower.is_alive():
        tail.summary.error = "recorder thread did not stop"
        return tail.summary
    try:
        if not tail.summary.error:
            tail.drain()
    except Exception as e:
        tail.summary.error = f"{type(e).__name__}: {e}"
    finally:
        tail.close()
    return tail.summary


def _recorder_main(pipe, index: int) -> None:
    """A recorder process: one RecordJob at a time; "end" from the parent closes the point."""
    import signal

    from profiler.runfolder import RunWriter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends the point, then us
    from profiler.stopping import die_with_parent

    die_with_parent()  # never an orphan writing into a run folder that --resume continues
    name_process(f"inferprof-rec{index}")
    writers: dict[str, RunWriter] = {}
    pipe.send("ready")
    while True:
        try:
            job = pipe.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        if job.run_dir not in writers:
            writers[job.run_dir] = RunWriter(Path(job.run_dir), tag=f"w{job.worker:03d}")

        def until_end() -> None:
            try:
                pipe.recv()  # "end", sent once every worker of the point returned
            except (EOFError, OSError):
                pass

        try:
            summary = record_point(job, writers[job.run_dir], until_end)
        except Exception as e:  # reported to the parent, which keeps the points already measured
            summary = RecordSummary(job.worker, error=f"{type(e).__name__}: {e}")
        try:
            pipe.send(summary)
        except (BrokenPipeError, OSError):
            return


class RecorderPool:
    """One recorder process per load-generator worker, spawned once per sweep."""

    def __init__(self, n: int):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        self.busy: dict[int, RecordJob] = {}
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_recorder_main, args=(child, i), daemon=True, name=f"inferprof-recorder-{i}")
            p.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(p)
        for i, pipe in enumerate(self.pipes):  # bounded: a recorder that cannot start is an error
            if not pipe.poll(60) or pipe.recv() != "ready":
                self.close()
                raise RuntimeError(f"recorder process {i} did not start")

    def start(self, jobs: list[RecordJob]) -> None:
        """Create each job's spool and start following it (before the workers write to it)."""
        for job in jobs:
            Path(job.spool).parent.mkdir(exist_ok=True)
            Path(segment(job.spool, 0)).touch()
            try:
                self.pipes[job.worker].send(job)
                self.busy[job.worker] = job
            except (BrokenPipeError, OSError):
                pass

    def finish(self, jobs: list[RecordJob], timeout_s: float) -> list[RecordSummary]:
        """Tell the recorders the point's workers are done; wait for what is left to be written."""
        for job in jobs:
            if job.worker in self.busy:
                try:
                    self.pipes[job.worker].send("end")
                except (BrokenPipeError, OSError):
                    pass
        limit = time.monotonic() + timeout_s
        out = []
        for job in jobs:
            if self.busy.pop(job.worker, None) is None:
                out.append(RecordSummary(job.worker, error="recorder process died"))
                continue
            pipe = self.pipes[job.worker]
            if not pipe.poll(max(0.0, limit - time.monotonic())):
                self.procs[job.worker].kill()
                out.append(RecordSummary(job.worker, error="recorder did not finish in time"))
                continue
            try:
                out.append(pipe.recv())
            except (EOFError, OSError):
                out.append(RecordSummary(job.worker, error="recorder process died"))
        return out

    def close(self) -> None:
        close_processes(self.pipes, self.procs, stops=2)  # the first ends a point still being recorded


def close_processes(pipes: list, procs: list, stops: int = 1) -> None:
    """Ask each process to stop (`stops` None messages on its pipe), wait a bounded time, then kill."""
    for pipe in pipes:
        for _ in range(stops):
            try:
                pipe.send(None)
            except (BrokenPipeError, OSError):
                pass
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(2)
