"""How a point or a sweep stops early: the error policy, a server that went away, and signals.

One shared byte per worker pool (`WorkerPool.stop`) says whether the point must stop and why;
the workers read it at each loop tick and then cancel what is in flight (recorded as `cancelled`)
and send nothing more:

- `STOP_ERROR_RATE`: a worker saw more than `--max-error-rate` failures among its last
  `--error-window` finished requests (`Outcomes`);
- `STOP_SERVER_DOWN`: a worker's last `DOWN_AFTER` requests in a row could not connect;
- `STOP_INTERRUPTED`: the sweep got SIGINT or SIGTERM (`SweepSignals`);
- `STOP_DECIDED`: a capacity probe's verdict is settled, or it is over-saturated (profiler/capacity.py).

The point is then recorded like any other, with its `stop_reason` in points.jsonl and
points.csv. After a server-down point the sweep waits for the server (`wait_for_server`, at
most `--server-down-wait`) and goes on, or ends keeping every finished point and the reason in
manifest.json. After an interrupted point it ends with exit code 128 + the signal's number.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque

from backends import control
from backends.records import CONNECT_ERRORS, ERR_CANCELLED

STOP_NONE, STOP_ERROR_RATE, STOP_SERVER_DOWN, STOP_INTERRUPTED, STOP_DECIDED = 0, 1, 2, 3, 4
STOP_REASONS = {STOP_NONE: "", STOP_ERROR_RATE: "error_rate", STOP_SERVER_DOWN: "server_down",
                STOP_INTERRUPTED: "interrupted", STOP_DECIDED: "decided"}
DOWN_AFTER = 5  # connect failures in a row (one worker) that mean the server is gone
MIN_WINDOW = 10  # the error rate is judged once this many requests (or the whole window) finished
HEALTH_PATHS = {"openai": "/v1/models", "triton": "/v2/health/ready"}


class Outcomes:
    """One worker's finished requests, as the policy sees them. `saw(error)` is called once per
    finished request (O(1)); it raises the shared stop byte when a rule trips."""

    def __init__(self, stop, max_error_rate: float | None, window: int):
        self.stop = stop  # shared array of one byte (or None: no policy, e.g. outside a sweep)
        self.rate = max_error_rate
        self.recent: deque[bool] = deque(maxlen=max(1, window))
        self.failed = 0  # failures in `recent`
        self.min_n = min(MIN_WINDOW, self.recent.maxlen)
        self.down_run = 0  # connect failures in a row

    def saw(self, error: str) -> None:
        if error == ERR_CANCELLED or self.stop is None:
            return
        bad = bool(error)
        self.down_run = self.down_run + 1 if error in CONNECT_ERRORS else 0
        if len(self.recent) == self.recent.maxlen:
            self.failed -= self.recent[0]
        self.recent.append(bad)
        self.failed += bad
        if self.stop[0]:
            return
        if self.down_run >= DOWN_AFTER:
            self.stop[0] = STOP_SERVER_DOWN
        elif self.rate is not None and len(self.recent) >= self.min_n and self.failed > self.rate * len(self.recent):
            self.stop[0] = STOP_ERROR_RATE


def wait_for_server(url: str, backend: str, wait_s: float, poll_s: float = 1.0, headers=None) -> float | None:
    """Poll the server's health page until it answers (any status below 500: a 401 or 404 is a
    server that is up): the seconds that took, or None when `wait_s` passed first (bounded: at
    most wait_s / poll_s polls of at most 5 s each)."""
    path = HEALTH_PATHS.get(backend, "/health")
    start = time.monotonic()
    while True:
        try:
            status, _, _ = control.get(url.rstrip("/") + path, timeout=min(5.0, max(0.5, wait_s)), headers=headers)
            if status < 500:
                return time.monotonic() - start
        except control.ControlError:
            pass
        left = wait_s - (time.monotonic() - start)
        if left <= 0:
            return None
        time.sleep(min(poll_s, left))


class SweepSignals:
    """While a sweep runs: the first SIGINT or SIGTERM sets the pool's stop byte (the point ends
    cleanly, its in-flight requests cancelled) and is remembered in `signum`; a second one acts
    as the default would (Python's KeyboardInterrupt / termination)."""

    def __init__(self, stop):
        self.stop = stop
        self.signum = 0
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self.stop[0] = STOP_INTERRUPTED
        for s, old in self._old.items():
            signal.signal(s, old)

    def __enter__(self) -> SweepSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the sweep process that started it dies (even by
    `kill -9`), so no orphaned worker or recorder keeps writing into a run folder that
    `--resume` is about to continue. Elsewhere a no-op (orphans then end at their next pipe read)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
