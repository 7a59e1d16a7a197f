"""The two central senders of the mock server; neither runs a coroutine or timer per stream.

``ExactScheduler`` (``--ttft-ms/--itl-ms``): a heap of due times. Chunk 0 of a request is due
``ttft`` after the request was read, chunk i+1 ``itl`` after chunk i's due time (absolute schedule,
no drift; a late pass sends what is due and the log records the real times). One pass sends every
chunk due now (each stream at most once per pass, so ITL 0 means "as fast as possible, fairly"),
then sleeps until the next due time. A stream whose socket is full is parked until the kernel has
taken its bytes (``resume_writing``), so a logged send time is when the bytes reached the kernel.

``EngineDriver`` (performance model): runs ``BatchEngine`` steps back to back on absolute
deadlines; at the end of each step it sends the chunks the step completed.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable
from time import perf_counter_ns

from backends.mock.chunklog import ChunkLog
from backends.mock.engine import BatchEngine, EngineRequest
from backends.mock.http import HttpConnection
from backends.mock.perfmodel import Preset
from backends.mock.telemetry import PowerMeter, ServerStats

Jitter = Callable[[random.Random], float]  # draws a multiplier around 1


class Job:
    """One request being answered: precomputed writes and how far they have been sent."""

    __slots__ = ("conn", "writes", "tokens", "bounds", "n_chunks", "sent", "log_idx", "arrival_ns",
                 "first_ns", "last_ns", "cut_after", "prompt_tokens", "n_tokens", "ereq", "done",
                 "itls", "seq", "due", "owner", "reason", "cached")

    def __init__(self, conn: HttpConnection, writes: list[bytes], tokens: list[int], arrival_ns: int,
                 prompt_tokens: int, n_tokens: int, log_idx: int, cut_after: int) -> None:
        self.conn = conn
        self.writes = writes
        self.tokens = tokens
        self.n_chunks = len(writes)
        self.sent = 0
        self.log_idx = log_idx
        self.arrival_ns = arrival_ns
        self.first_ns = -1
        self.last_ns = -1
        self.cut_after = cut_after
        self.prompt_tokens = prompt_tokens
        self.n_tokens = n_tokens
        self.ereq: EngineRequest | None = None
        self.done = False
        self.itls: list[int] | None = None
        self.seq = 0
        self.due = 0
        self.owner = None
        self.reason = "length"  # finished_reason counted when the response completes
        self.cached = 0  # prompt tokens served by the prefix cache (not prefilled)
        acc = 0
        bounds = []
        for k in tokens:
            acc += k
            bounds.append(max(acc, 1))
        self.bounds = bounds

    def resume(self) -> None:
        self.owner.resume(self)


class Sender:
    """What both senders share: stats, chunk log, power meter, completion and cancellation."""

    def __init__(self, stats: ServerStats, meter: PowerMeter, log: ChunkLog | None) -> None:
        self.stats = stats
        self.meter = meter
        self.log = log
        self.active = 0

    def _cut(self, job: Job) -> None:
        """Injected mid-stream failure: close the connection without finishing the response."""
        job.done = True
        self.stats.success["abort"] += 1
        self._release(job)
        job.conn.keep_alive = False
        job.conn.close()

    def _complete(self, job: Job, t: int) -> None:
        job.done = True
        s = self.stats
        s.success[job.reason] += 1
        s.e2e.observe((t - job.arrival_ns) * 1e-9)
        self._release(job)
        job.conn.finish_response()

    def cancel(self, job: Job) -> None:
        """The client went away."""
        if not job.done:
            job.done = True
            self.stats.success["abort"] += 1
            self._release(job)

    def _release(self, job: Job) -> None:
        raise NotImplementedError


class ExactScheduler(Sender):
    PASS_LIMIT = 4096  # chunks per pass before the loop gets to read sockets again

    def __init__(self, stats: ServerStats, meter: PowerMeter, log: ChunkLog | None, ttft_ms: float,
                 itl_ms: float, jitter: Jitter | None, seed: int) -> None:
        super().__init__(stats, meter, log)
        self.ttft_ns = int(ttft_ms * 1e6)
        self.itl_ns = int(itl_ms * 1e6)
        self.jitter = jitter
        self.seed = seed
        self.heap: list[tuple[int, int, Job]] = []
        self.seq = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_due = 0
        self.loop = asyncio.get_event_loop()

    def running_waiting(self) -> tuple[int, int]:
        return self.active, 0

    def add(self, job: Job, streaming: bool) -> None:
        self.seq += 1
        job.seq = self.seq
        job.owner = self
        ttft = self.ttft_ns
        itl = self.itl_ns
        if self.jitter is not None:
            rng = random.Random(self.seed * 1_000_003 + job.seq)
            ttft = int(ttft * self.jitter(rng))
            job.itls = [int(itl * self.jitter(rng)) for _ in range(job.n_chunks)]
        if not streaming:  # one write when the whole generation would have finished
            gaps = sum(job.itls[: job.n_tokens - 1]) if job.itls else itl * (job.n_tokens - 1)
            job.itls = None
            ttft += gaps
        self.active += 1
        self.meter.set(job.arrival_ns, self.active, True)
        self._push(job.arrival_ns + ttft, job)

    def _push(self, due: int, job: Job) -> None:
        heapq.heappush(self.heap, (due, job.seq, job))
        if self._timer is None or due < self._timer_due:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.heap:
            return
        due = self.heap[0][0]
        self._timer_due = due
        delay = (due - perf_counter_ns()) * 1e-9
        if delay <= 0:
            self._timer = self.loop.call_soon(self._run)
        else:
            self._timer = self.loop.call_later(delay, self._run)

    def resume(self, job: Job) -> None:
        if not job.done:
            self._push(max(job.due, perf_counter_ns()), job)

    def _release(self, job: Job) -> None:
        self.active -= 1
        self.meter.set(perf_counter_ns(), self.active, self.active > 0)

    def _run(self) -> None:
        self._timer = None
        heap = self.heap
        pop = heapq.heappop
        pc = perf_counter_ns
        stats = self.stats
        log = self.log
        itl_ns = self.itl_ns
        again = []
        now = pc()
        budget = self.PASS_LIMIT
        while heap and budget:
            due = heap[0][0]
            if due > now:
                now = pc()
                if due > now:
                    break
            job = pop(heap)[2]
            if job.done:
                continue
            i = job.sent
            if i >= job.cut_after:
                self._cut(job)
                continue
            conn = job.conn
            if conn.paused:
                job.due = due
                conn.parked = job
                continue
            conn.transport.write(job.writes[i])
            t = pc()
            budget -= 1
            k = job.tokens[i]
            job.sent = i + 1
            stats.generation_tokens += k
            if log is not None:
                log.add(job.log_idx, i, t, k)
            if i == 0:
                job.first_ns = t
                stats.ttft.observe((t - job.arrival_ns) * 1e-9)
            else:
                stats.itl.observe((t - job.last_ns) * 1e-9)
            job.last_ns = t
            if i + 1 == job.n_chunks:
                self._complete(job, t)
            else:
                itls = job.itls
                again.append((due + (itls[i] if itls else itl_ns), job.seq, job))
        for e in again:
            heapq.heappush(heap, e)
        if heap:
            self._arm()


class EngineDriver(Sender):
    def __init__(self, stats: ServerStats, meter: PowerMeter, log: ChunkLog | None, preset: Preset) -> None:
        super().__init__(stats, meter, log)
        self.engine = BatchEngine(preset)
        self.stepping = False
        self.step_start = 0
        self.step_end = 0
        self.loop = asyncio.get_event_loop()

    def running_waiting(self) -> tuple[int, int]:
        return len(self.engine.running), len(self.engine.waiting)

    def add(self, job: Job, streaming: bool) -> None:
        job.owner = self
        req = EngineRequest(job.prompt_tokens, job.n_tokens, job.arrival_ns, sink=job, cached_tokens=job.cached)
        job.ereq = req
        self.engine.add(req)
        self.active += 1
        if not self.stepping:
            self.stepping = True
            # call_soon: requests read in this same loop iteration join the first step
            self.loop.call_soon(self._start, 0)

    def resume(self, job: Job) -> None:
        pass  # the engine never waits for a slow client, as vLLM's does not

    def _release(self, job: Job) -> None:
        self.active -= 1
        req = job.ereq
        if req is not None and req.state in ("waiting", "running"):
            self.engine.abort(req)

    def _start(self, t_ns: int) -> None:
        now = t_ns or perf_counter_ns()
        eng = self.engine
        if eng.idle:
            self.stepping = False
            self.meter.set(max(now, self.meter.t), 0, False)
            return
        dur = eng.start_step(now)
        queue = self.stats.queue
        for r in eng.last_admitted:
            queue.observe((now - r.arrival_ns) * 1e-9)
            self.stats.prompt_tokens += r.prompt_tokens
        self.meter.set(max(now, self.meter.t), len(eng.running), True)
        self.step_start = now
        self.step_end = now + dur
        self.loop.call_later(max(0.0, (self.step_end - perf_counter_ns()) * 1e-9), self._finish)

    def _finish(self) -> None:
        end = self.step_end
        emitted, _finished = self.engine.finish_step(end)
        stats = self.stats
        log = self.log
        pc = perf_counter_ns
        stats.generation_tokens += len(emitted)
        continuing = 0
        for r in emitted:
            job = r.sink
            if r.generated == 1:
                stats.ttft.observe((end - r.arrival_ns) * 1e-9)
            else:
                continuing += 1
            if job.done:
                continue
            i = job.sent
            if r.generated < job.bounds[i]:
                continue
            if i >= job.cut_after:
                self._cut(job)
                continue
            if job.conn.closed:
                self.cancel(job)
                continue
            job.conn.transport.write(job.writes[i])
            t = pc()
            job.sent = i + 1
            if log is not None:
                log.add(job.log_idx, i, t, job.tokens[i])
            if i == 0:
                job.first_ns = t
            job.last_ns = t
            if i + 1 == job.n_chunks:
                self._complete(job, t)
        if continuing:
            stats.itl.observe((end - self.step_start) * 1e-9, continuing)
        self._start(end)
