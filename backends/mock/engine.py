"""Continuous-batching engine state machine (pure: times are passed in, nothing sleeps).

One iteration ("step") of ``BatchEngine``:

1. ``start_step(now)``: admit waiting requests in FIFO order while ``len(running) < max_num_seqs``
   and ``kv_reserved + prompt + max_tokens <= kv_tokens`` (a request reserves its whole KV need on
   admission, so nothing is ever preempted); then spend the step's token budget
   (``max_num_batched_tokens``; 0 = unlimited): one token per decoding request, the rest on
   prompt tokens of requests still prefilling, oldest first (chunked prefill).
   Returns the step duration ``perfmodel.step_s(prefill tokens, batch, context tokens)``.
2. ``finish_step(end)``: every running request whose prompt is fully prefilled gets one token;
   requests reaching ``max_tokens`` finish and release their KV reservation.

The server runs steps back to back on absolute deadlines (step k+1 starts at the end of step k)
while any request is running or waiting; a request arriving during a step waits for the next one.
``simulate_closed_loop`` runs the same engine in virtual time; ``expected_steady_state`` and
``expected_energy_per_output_token_j`` read a closed loop's figures from it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from backends.mock.perfmodel import Preset, power_w, step_s


@dataclass(slots=True, eq=False)
class EngineRequest:
    """One generation request inside the engine; times in ns of the caller's clock."""

    prompt_tokens: int
    max_tokens: int
    arrival_ns: int
    sink: Any = None  # whatever the caller wants back with each token
    prefill_left: int = 0
    generated: int = 0
    admitted_ns: int = -1
    first_token_ns: int = -1
    last_token_ns: int = -1
    state: str = "new"  # new | waiting | running | finished | aborted
    cached_tokens: int = 0  # prompt tokens found in the prefix cache: never prefilled


@dataclass
class BatchEngine:
    preset: Preset
    waiting: deque = field(default_factory=deque)
    running: list = field(default_factory=list)
    kv_reserved: int = 0
    steps: int = 0
    last_admitted: list = field(default_factory=list)  # admitted by the latest start_step
    _emitters: list = field(default_factory=list)

    def add(self, req: EngineRequest) -> None:
        req.prefill_left = req.prompt_tokens - req.cached_tokens
        req.state = "waiting"
        self.waiting.append(req)

    def abort(self, req: EngineRequest) -> None:
        """Drop a request (client went away); releases its KV reservation."""
        if req.state == "waiting":
            self.waiting.remove(req)
        elif req.state == "running":
            self.running.remove(req)
            self.kv_reserved -= req.prompt_tokens + req.max_tokens
        req.state = "aborted"

    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting

    def kv_usage(self) -> float:
        """Reserved share of the KV cache, 0..1."""
        return self.kv_reserved / self.preset.kv_tokens

    def start_step(self, now_ns: int) -> int:
        """Admit, schedule prefill chunks; returns the step duration in ns."""
        p = self.preset
        waiting, running = self.waiting, self.running
        admitted = self.last_admitted = []
        while waiting and len(running) < p.max_num_seqs:
            head = waiting[0]
            need = head.prompt_tokens + head.max_tokens
            if self.kv_reserved + need > p.kv_tokens:
                break  # FCFS: the head blocks the queue, as vLLM's scheduler does
            waiting.popleft()
            self.kv_reserved += need
            head.state = "running"
            head.admitted_ns = now_ns
            running.append(head)
            admitted.append(head)
        budget = p.max_num_batched_tokens or 1 << 62
        budget -= sum(1 for r in running if r.prefill_left == 0)
        prefill = 0
        context = 0
        emitters = []
        for r in running:
            if r.prefill_left:
                take = min(r.prefill_left, max(budget, 0))
                r.prefill_left -= take
                budget -= take
                prefill += take
            context += r.prompt_tokens - r.prefill_left + r.generated
            if not r.prefill_left:
                emitters.append(r)
        self._emitters = emitters
        self.steps += 1
        return int(step_s(p, prefill, len(running), context) * 1e9)

    def finish_step(self, end_ns: int) -> tuple[list[EngineRequest], list[EngineRequest]]:
        """Give each emitting request one token; returns (emitted, finished)."""
        emitted = []
        finished = []
        for r in self._emitters:
            if r.state != "running":
                continue  # aborted during the step
            r.generated += 1
            if r.generated == 1:
                r.first_token_ns = end_ns
            r.last_token_ns = end_ns
            emitted.append(r)
            if r.generated >= r.max_tokens:
                finished.append(r)
        self._emitters = []
        if finished:
            done = set(map(id, finished))
            self.running = [r for r in self.running if id(r) not in done]
            for r in finished:
                r.state = "finished"
                self.kv_reserved -= r.prompt_tokens + r.max_tokens
        return emitted, finished


@dataclass(frozen=True)
class ClosedLoopResult:
    ttft_s: float
    itl_s: float
    output_tok_per_s: float
    mean_power_w: float  # per GPU, time-weighted over the window
    requests: int  # requests measured


def simulate_closed_loop(
    preset: Preset,
    concurrency: int,
    input_tokens: int,
    output_tokens: int,
    cycles: int = 4,
    arrival_spread_s: float = 20e-6,
    client_turnaround_s: float = 200e-6,
) -> ClosedLoopResult:
    """Closed loop of ``concurrency`` clients on ``BatchEngine`` in virtual time.

    Client ``c`` sends its first request at ``c * arrival_spread_s`` and each next one
    ``client_turnaround_s`` after its previous request's last token. The run stops after
    ``cycles * concurrency`` completions. The window runs from the ``concurrency``-th completion
    to the last one: throughput = tokens emitted in the window / window length; TTFT (arrival to
    first token) and ITL (mean gap between consecutive tokens) are averaged over requests that
    arrived and finished inside the window; power is time-weighted (idle between steps).
    """
    if concurrency < 1 or input_tokens < 0 or output_tokens < 1:
        raise ValueError("concurrency and output_tokens must be >= 1, input_tokens >= 0")
    engine = BatchEngine(preset)
    spread = int(arrival_spread_s * 1e9)
    turn = int(client_turnaround_s * 1e9)
    arrivals: list[tuple[int, int]] = [(c * spread, c) for c in range(concurrency)]
    heapq.heapify(arrivals)
    target = cycles * concurrency
    completed = 0
    t = 0
    t_win = -1
    win_tokens = 0
    win_energy = 0.0
    measured: list[EngineRequest] = []
    while completed < target:
        if engine.idle:
            t = max(t, arrivals[0][0])
        while arrivals and arrivals[0][0] <= t:
            a, _c = heapq.heappop(arrivals)
            engine.add(EngineRequest(input_tokens, output_tokens, a))
        if engine.idle:
            continue
        start = t
        dur = engine.start_step(t)
        t = start + dur
        emitted, finished = engine.finish_step(t)
        if t_win >= 0:
            win_tokens += len(emitted)
            win_energy += power_w(preset, len(engine.running) + len(finished)) * dur * 1e-9
            if engine.idle and arrivals:
                gap = max(0, arrivals[0][0] - t)
                win_energy += power_w(preset, 0) * gap * 1e-9
        for r in finished:
            completed += 1
            heapq.heappush(arrivals, (t + turn, 0))
            if t_win >= 0 and r.arrival_ns >= t_win:
                measured.append(r)
        if t_win < 0 and completed >= concurrency:
            t_win = t
    window_s = (t - t_win) * 1e-9
    if not measured or window_s <= 0:
        raise ValueError("simulation too short to reach a steady state")
    ttft = sum(r.first_token_ns - r.arrival_ns for r in measured) / len(measured) * 1e-9
    if output_tokens > 1:
        itl = sum((r.last_token_ns - r.first_token_ns) / (output_tokens - 1) for r in measured)
        itl = itl / len(measured) * 1e-9
    else:
        itl = 0.0
    return ClosedLoopResult(
        ttft_s=ttft,
        itl_s=itl,
        output_tok_per_s=win_tokens / window_s,
        mean_power_w=win_energy / window_s,
        requests=len(measured),
    )


def expected_steady_state(
    preset: Preset, concurrency: int, input_tokens: int, output_tokens: int
) -> tuple[float, float, float]:
    """(mean TTFT s, mean ITL s, output tokens/s) of a closed loop of ``concurrency`` clients.

    Computed by running the server's own engine (``BatchEngine``) in virtual time, so it
    includes queueing for KV/max_num_seqs, chunked prefill and the one-step wait of a request
    that arrives while a step is running. See ``simulate_closed_loop`` for the details.
    """
    result = simulate_closed_loop(preset, concurrency, input_tokens, output_tokens)
    return result.ttft_s, result.itl_s, result.output_tok_per_s


def expected_energy_per_output_token_j(
    preset: Preset, concurrency: int, input_tokens: int, output_tokens: int
) -> float:
    """Joules per output token in the closed-loop steady state, all GPUs of the replica.

    Uses the time-weighted mean power of the simulated run (``simulate_closed_loop``)."""
    result = simulate_closed_loop(preset, concurrency, input_tokens, output_tokens)
    return preset.gpus * result.mean_power_w / result.output_tok_per_s
