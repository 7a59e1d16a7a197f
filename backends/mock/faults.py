"""Faults on demand in the mock: a seeded plan of which generation request gets which fault.

Flags (`--fault`, repeatable; the first rule that matches a request wins):

- `KIND=RATE`   each generation request gets KIND with probability RATE (seeded by `--seed`; one
                draw per rate rule per request, so the decisions depend only on the seed and
                the order requests arrive in);
- `KIND%N`      every N-th generation request (arrival index i with i % N == N - 1; the index
                counts from 0 over every generation request, the client's preflight included):
                exact counts, for tests;
- `KIND@T[+D]`  requests arriving T to T+D seconds after the server started (D: forever);
                `crash@T+D`: the process exits at T and is started again on the same port D
                seconds later (by `supervise`, which runs the server as its child);
                `crash%N+D`: the same when the N-th generation request arrives (deterministic).

Kinds (what the client should classify them as, backends/records.py):
  http429 (Retry-After: `--fault-retry-after`), http500, http503 (Retry-After too)  → http_429 / http_5xx
  reset_head   a partial status line, then a TCP reset                               → reset
  reset_mid    `--fault-after-chunks` chunks, then a TCP reset                       → reset
  bad_json     an event that is not JSON after k chunks (the stream goes on)         → protocol
  truncated    the stream ends (last chunk sent) inside an event after k chunks      → protocol
  wrong_type   HTTP 200 with Content-Type application/json                           → protocol
  stall        k chunks, then nothing (connection kept open)                         → timeout_idle
  slow_headers the response starts `--fault-delay` seconds late                      → timeout_ttft if
                                                                                        the client's
                                                                                        limit is shorter
  error_event  after k chunks an `{"error": …}` event under HTTP 200, then [DONE]    → server_error
  crash        the process exits (code 75) at T                                      → reset, connect

Faults apply to streamed OpenAI generations (chat and completions); other routes are untouched.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from backends.errors import BackendError

KINDS = ("http429", "http500", "http503", "reset_head", "reset_mid", "bad_json", "truncated", "wrong_type",
         "stall", "slow_headers", "error_event", "crash")
# The class a client should give each fault (backends/records.py); slow_headers only when its
# TTFT limit is shorter than --fault-delay, stall when its idle limit is shorter than the wait.
CLIENT_CLASS = {"http429": "http_429", "http500": "http_5xx", "http503": "http_5xx", "reset_head": "reset",
                "reset_mid": "reset", "bad_json": "protocol", "truncated": "protocol", "wrong_type": "protocol",
                "stall": "timeout_idle", "slow_headers": "timeout_ttft", "error_event": "server_error"}
MID_STREAM = frozenset(("reset_mid", "bad_json", "truncated", "stall", "error_event"))
CRASH_EXIT = 75  # the exit code of an injected crash: the supervisor restarts only on it
GENERATION = frozenset(("/v1/chat/completions", "/v1/completions"))
_STATUS = {"http429": (429, b"Too Many Requests"), "http500": (500, b"Internal Server Error"),
           "http503": (503, b"Service Unavailable")}


@dataclass(frozen=True)
class FaultRule:
    kind: str
    rate: float = 0.0  # KIND=RATE
    every: int = 0  # KIND%N
    start_s: float = -1.0  # KIND@T+D
    dur_s: float = math.inf

    def timed(self, t_s: float) -> bool:
        return self.start_s >= 0 and self.start_s <= t_s < self.start_s + self.dur_s


def parse_rule(text: str) -> FaultRule:
    """'stall=0.1' | 'http429%5' | 'http503@10+5' | 'crash@20+3'; BackendError with one line."""
    for sep in ("=", "%", "@"):
        kind, found, arg = text.partition(sep)
        if found:
            break
    else:
        raise BackendError(f"bad --fault {text!r}: use KIND=RATE, KIND%N or KIND@T[+D]")
    if kind not in KINDS:
        raise BackendError(f"bad --fault {text!r}: kind must be one of {', '.join(KINDS)}")
    try:
        if sep == "=":
            rule = FaultRule(kind, rate=float(arg))
            ok = 0.0 <= rule.rate <= 1.0
        elif sep == "%":
            n, _, d = arg.partition("+")
            rule = FaultRule(kind, every=int(n), dur_s=float(d) if d else math.inf)
            ok = rule.every >= 1 and rule.dur_s > 0
        else:
            t, _, d = arg.partition("+")
            rule = FaultRule(kind, start_s=float(t), dur_s=float(d) if d else math.inf)
            ok = rule.start_s >= 0 and rule.dur_s > 0
    except ValueError:
        ok = False
    if kind == "crash":  # needs its restart delay D
        ok = ok and sep != "=" and math.isfinite(rule.dur_s)
    elif sep == "%":
        ok = ok and not math.isfinite(rule.dur_s)
    if not ok:
        raise BackendError(f"bad --fault {text!r}: RATE in [0, 1], N >= 1, T >= 0, D > 0; "
                           "crash only as crash@T+D or crash%N+D")
    return rule


@dataclass
class FaultPlan:
    rules: list[FaultRule]
    seed: int = 0
    after_chunks: int = 2
    delay_s: float = 2.0
    retry_after_s: int = 1
    started: float = field(default_factory=time.monotonic)
    n: int = 0  # generation requests seen
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"mock-faults-{self.seed}")
        self.again: set[int] = set()  # requests deferred by slow_headers: not drawn twice
        self.pending: dict[int, str] = {}  # connection id -> mid-stream fault of its current response

    def draw(self) -> str:
        """The fault of the next generation request ("" = none)."""
        i = self.n
        self.n += 1
        t = time.monotonic() - self.started
        draws = [self.rng.random() for r in self.rules if r.rate > 0]
        k = 0
        for r in self.rules:
            if r.kind == "crash":
                if r.every and i == r.every - 1:
                    os._exit(CRASH_EXIT)  # this request dies with the process
                continue
            hit = r.timed(t) or (r.every and i % r.every == r.every - 1)
            if r.rate > 0:
                hit = hit or draws[k] < r.rate
                k += 1
            if hit:
                self.counts[r.kind] = self.counts.get(r.kind, 0) + 1
                return r.kind
        return ""

    # -- the hooks in backends/mock/server.py ----------------------------------------------
    def intercept(self, conn, req, again) -> bool:
        """Before a request is routed: True when a fault answered it (or will, later)."""
        if req.method != "POST" or req.path not in GENERATION:
            return False
        if id(req) in self.again:
            self.again.discard(id(req))
            return False
        kind = self.draw()
        if kind in _STATUS:
            _status(conn, *_STATUS[kind], self.retry_after_s if kind != "http500" else None)
        elif kind == "reset_head":
            conn.transport.write(b"HTTP/1.1 200 OK\r\n")
            _reset(conn)
        elif kind == "wrong_type":
            conn.respond(200, b'{"object":"chat.completion","choices":[]}')
        elif kind == "slow_headers":
            self.again.add(id(req))
            import asyncio

            asyncio.get_running_loop().call_later(self.delay_s, self._late, conn, req, again)
        elif kind in MID_STREAM:
            self.pending[id(conn)] = kind
            return False
        else:
            return False
        return True

    def _late(self, conn, req, again) -> None:
        """slow_headers: answer now, unless the client gave up meanwhile."""
        if conn.closed:
            self.again.discard(id(req))
            conn.busy = False
            return
        again(conn, req)

    def shape(self, conn, writes: list[bytes], tokens: list[int], cut_after: int):
        """A streamed response about to start: its writes, tokens and cut point with the fault of
        its request applied (unchanged when it has none)."""
        kind = self.pending.pop(id(conn), "")
        if not kind or len(writes) < 2:  # a one-chunk stream has no "after k chunks"
            return writes, tokens, cut_after
        k = min(self.after_chunks, len(writes) - 1)
        if kind == "reset_mid":
            _linger0(conn)  # the cut after k chunks becomes a TCP reset
            return writes, tokens, k
        if kind == "bad_json":
            writes = list(writes)
            writes[k - 1] = writes[k - 1] + _frame(b'data: {"id": "cmpl-bad", "choices": [\n\n')
            return writes, tokens, cut_after
        if kind == "truncated":
            return writes[:k - 1] + [writes[k - 1] + _frame(b'data: {"id":"cmpl-trunc","choi') + b"0\r\n\r\n"], \
                tokens[:k], cut_after
        if kind == "stall":
            return writes[:k], tokens[:k], cut_after
        err = b'data: {"error":{"message":"mock injected error event","type":"InternalServerError","code":500}}\n\n'
        return writes[:k - 1] + [writes[k - 1] + _frame(err) + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"], \
            tokens[:k], cut_after

    def arm_crash(self, loop) -> None:
        """Exit the process at each crash rule's T (the supervisor starts it again)."""
        for r in self.rules:
            if r.kind == "crash" and r.start_s >= 0:
                loop.call_later(max(0.0, r.start_s - (time.monotonic() - self.started)), os._exit, CRASH_EXIT)


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _status(conn, status: int, reason: bytes, retry_after: int | None) -> None:
    body = b'{"error":{"message":"mock injected HTTP %d","type":"MockFault","param":null,"code":%d}}' % (status, status)
    retry = b"retry-after: %d\r\n" % retry_after if retry_after is not None else b""
    conn.transport.write(b"HTTP/1.1 %d %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b"
                         % (status, reason, len(body), retry, body))
    conn.finish_response()


def _linger0(conn) -> None:
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reset(conn) -> None:
    """Close with a TCP reset (after what was written is sent)."""
    _linger0(conn)
    conn.keep_alive = False
    conn.close()


# -- flags and the supervisor --------------------------------------------------------------------

def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faults (backends/mock/faults.py)")
    g.add_argument("--fault", action="append", default=[], help="KIND=RATE | KIND%%N | KIND@T[+D] (repeatable)")
    g.add_argument("--fault-after-chunks", type=int, default=2, help="mid-stream faults strike after this many chunks")
    g.add_argument("--fault-delay", type=float, default=2.0, help="slow_headers: seconds the response starts late")
    g.add_argument("--fault-retry-after", type=int, default=1, help="Retry-After of http429/http503 (seconds)")
    g.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)


def plan_from_args(a) -> FaultPlan | None:
    rules = [parse_rule(t) for t in a.fault]
    if a.fault_after_chunks < 1 or a.fault_delay < 0 or a.fault_retry_after < 0:
        raise BackendError("--fault-after-chunks must be >= 1, --fault-delay and --fault-retry-after >= 0")
    if not rules:
        return None
    return FaultPlan(rules, seed=a.seed, after_chunks=a.fault_after_chunks, delay_s=a.fault_delay,
                     retry_after_s=a.fault_retry_after)


def needs_supervisor(a) -> bool:
    return not a.supervised and any(t.startswith("crash") for t in a.fault)


def supervise(argv: list[str], a) -> int:
    """Run the server as a child; when it exits with CRASH_EXIT, start it again on the same port
    after the crash rule's D seconds, without the crash rules. Prints the child's LISTENING line."""
    rules = [parse_rule(t) for t in a.fault]
    down_s = next((r.dur_s for r in rules if r.kind == "crash"), 1.0)
    base = [sys.executable, "-m", "backends.mock", *argv, "--supervised"]
    child = subprocess.Popen(base, stdout=subprocess.PIPE, text=True)
    stop = threading.Event()

    def forward(signum, frame) -> None:
        stop.set()
        if child.poll() is None:
            child.send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, forward)
    line = child.stdout.readline().strip()
    print(line, flush=True)
    if not line.startswith("LISTENING "):
        return child.wait()
    port = line.split()[1]
    while True:
        code = child.wait()
        if code != CRASH_EXIT or stop.is_set():
            return code
        time.sleep(down_s if math.isfinite(down_s) else 1.0)
        again = [x for t in a.fault if not t.startswith("crash") for x in ("--fault", t)]
        argv2 = _without_faults(argv) + again + ["--port", port]
        child = subprocess.Popen([sys.executable, "-m", "backends.mock", *argv2, "--supervised"],
                                 stdout=subprocess.DEVNULL)


def _without_faults(argv: list[str]) -> list[str]:
    """argv without its --fault and --port flags (both forms: '--fault X' and '--fault=X')."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in ("--fault", "--port"):
            skip = True
            continue
        if x.startswith(("--fault=", "--port=")):
            continue
        out.append(x)
    return out
