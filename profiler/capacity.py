"""`inferprof sweep --find`: the SLO search run as points of one run folder, and the steady-state
watcher that ends a point once it has decided.

How a search runs (each step is a point of the run folder; README "Capacity search"):
1. Calibration (concurrency): 4 requests at concurrency 1 give W0 (mean E2E of a lone request);
   a short point at the top of the range (2 × HI requests, at most 512) gives X_max (completed
   requests/s). The start is N*/2 = X_max·W0/2 (`profiler.search.start_load`). Rate: one point of
   5 s of arrivals at HI gives X_max; the start is X_max/2. A calibration point enters the search
   history only when its verdict is resolved.
2. Probes: `profiler.search.next_probe(history)` names the next load; each probe is a point of up
   to `max_requests` requests, watched while it runs (`Watcher`) and ended as soon as it has
   decided: FAIL (any SLO's interval above its target), PASS (every SLO's interval below and the
   output tok/s converged), over-saturated (FAIL), or `max_duration` reached. A verdict reached
   while running is the probe's verdict (the interval is valid at any stopping time); a point that
   ran to its cap is assessed on all its requests (PASS, FAIL or UNRESOLVED).
3. search.json records the config, every probe (point, load, verdict, per-SLO intervals, warm-up
   cut, why it ended, seconds), the final bracket, why the search stopped and the GPU-seconds.

Resuming (`sweep --resume`, `SearchPlan.resume_at`): the plan runs its own steps again over the
finished points without measuring them: each takes its search.json row as recorded (the verdict
reached while it ran included), or, when the sweep died between the point's end and that row, the
assessment of all its requests. `next_probe` then sees the history it had and names the same next
load. A point that a signal or a lost server cut short (`stop_reason` interrupted / server_down)
is kept in the folder but not in the history, so its load is measured again.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from profiler import runfolder as rf
from profiler.errors import UserError
from profiler.pointview import PointView
from profiler.runread import point_rows
from profiler.search import Probe, SearchConfig, Stop, bracket, next_probe, start_load
from profiler.slo import slo_list
from profiler.steady import binned_rate, converged, mser5_cut, oversaturated
from profiler.verdict import FAIL, PASS, UNRESOLVED, combine, slo_verdict

SEARCH_JSON = "search.json"
WATCH_EVERY_S = 2.0  # the recorders write every 2 s: reading more often sees nothing new
MIN_DECIDE = 50  # requests after warm-up before a verdict may end a point
CHUNKS_PER_BIN = 50  # the throughput series: time bins of about this many content chunks (10 to 200 bins)


@dataclass(frozen=True)
class CapacitySpec:
    """What `--find` asks (flags → this)."""

    find: str  # "max-goodput" | "max-throughput"
    over: str  # "concurrency" | "rate"
    lo: float
    hi: float
    tolerance: float = 0.05
    converge: float = 0.10  # relative error of the output tok/s (interval half-width ≤ γ/(1+γ) of the mean)
    min_duration_s: float = 5.0
    max_duration_s: float = 300.0
    max_requests: int = 5000
    max_probes: int = 15
    alpha: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    """What a point's requests (so far) say."""

    verdict: str
    slos: tuple = ()  # SloVerdict per SLO
    n: int = 0  # requests after the warm-up cut
    warmup_cut: int = 0  # requests dropped as warm-up (MSER-5 on TTFT in send order)
    oversaturated: bool = False
    converged: bool = False
    tok_per_s: float = math.nan
    req_per_s: float = math.nan
    mean_e2e_s: float = math.nan

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slos"] = [s.to_dict() for s in self.slos]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def assess(view: PointView, slos: dict[str, float], rel: float, alpha: float = 0.05) -> Assessment:
    """Warm-up cut, SLO verdicts, convergence and over-saturation of one point's requests."""
    order = np.argsort(view.send_ns, kind="stable")
    ok = view.ok[order]
    ttft = view.per["ttft"][order]
    cut = mser5_cut(ttft[ok])
    kept = np.zeros(view.n, dtype=bool)
    if ok.any():
        t_cut = view.send_ns[order][ok][cut] if cut < ok.sum() else np.iinfo(np.int64).max
        kept = (view.send_ns >= t_cut) & ~view.cancelled
    verdicts = tuple(_slo_verdicts(view, kept, slos, alpha))
    tok, req_s, conv = _throughput(view, kept, rel, alpha)
    # A closed loop holds at most `concurrency` requests, so its queue cannot grow without bound:
    # a rising TTFT there is warm-up or noise (at one stream, a few ms of jitter), never overload.
    over = _watch_queue(view.mode, slos) and oversaturated(ttft[ok][cut:])
    verdict = FAIL if over else combine(list(verdicts)) if verdicts else (PASS if conv else UNRESOLVED)
    e2e = view.per["e2e"][view.ok]
    return Assessment(verdict, verdicts, int(kept.sum()), int(cut), bool(over), bool(conv), tok, req_s,
                      float(np.nanmean(e2e)) if e2e.size else math.nan)


def _watch_queue(mode: str, slos: dict[str, float]) -> bool:
    """Is a growing queue judged by the over-saturation rule? Not in a closed loop (its queue is
    bounded by its concurrency), and not when an SLO on TTFT or E2E judges the queue's delay itself
    with its own confidence: near capacity an open loop's TTFT wanders up and down, and a trend
    test on it fails points that meet their SLO. The rule is run after the warm-up cut (TTFT
    climbs while the server fills, which is not a growing queue)."""
    return mode != "concurrency" and not any(s.metric in ("ttft", "e2e") for s in slo_list(slos))


def _slo_verdicts(view: PointView, kept: np.ndarray, slos: dict[str, float], alpha: float):
    failed = view.failed[kept]
    for s in slo_list(slos):
        values = view.longest_gap_s if s.metric == "itl" else view.per[s.metric]
        yield slo_verdict(s.name, s.stat, s.limit_s, np.asarray(values, dtype=float)[kept], failed, alpha)


def _throughput(view: PointView, kept: np.ndarray, rel: float, alpha: float) -> tuple[float, float, bool]:
    """(output tok/s, req/s, converged) from the kept requests' first send to the last end.

    The series is the output tokens of the content chunks arriving in each time bin (about
    CHUNKS_PER_BIN chunks a bin, 10 to 200 bins): tokens stream continuously, whereas completions
    of a closed loop come in lumps (streams started together end together)."""
    done = kept & view.ok
    if done.sum() < 2 or not view.chunks.size:
        return math.nan, math.nan, False
    start = int(view.send_ns[kept].min())
    stop = int(view.end_ns[done].max())
    span = (stop - start) / 1e9
    if span <= 0:
        return math.nan, math.nan, False
    runs = view.chunks
    weight = np.repeat(runs.est, runs.run_len).astype(float)
    if runs.tokens is not None:
        weight = np.where(runs.tokens >= 0, runs.tokens, weight)
    inside = (runs.t_ns >= start) & (runs.t_ns <= stop)
    bins = int(min(200, max(10, inside.sum() // CHUNKS_PER_BIN)))
    rates = binned_rate(runs.t_ns[inside], weight[inside], start, stop + 1, bins)
    return float(weight[inside].sum() / span), float(done.sum() / span), converged(rates, rel, alpha)


def read_view(run_dir: Path, point: int, mode: str, load: float) -> PointView | None:
    """The requests of `point` recorded so far, as a PointView (None when there are none yet)."""
    facts = {"point": point, "mode": mode, "load": load}
    for f, req, chunks in point_rows(run_dir, [facts]):
        if not len(req):
            return None
        return PointView.build(f, req, chunks, 0.0)
    return None


class Watcher:
    """Polled while a point runs: ends it once decided, over-saturated, or at the time cap."""

    def __init__(self, cap: CapacitySpec, slos: dict[str, float], run_dir: Path, point: int, mode: str,
                 load: float, pool, judge: bool = True):
        self.cap, self.slos, self.run_dir = cap, slos, run_dir
        self.point, self.mode, self.load, self.pool, self.judge = point, mode, load, pool, judge
        self.t0 = time.monotonic()
        self.next_look = self.t0 + WATCH_EVERY_S
        self.reason = ""
        self.verdict = ""  # PASS or FAIL once decided while running

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.reason or now < self.next_look:
            return
        self.next_look = now + WATCH_EVERY_S
        elapsed = now - self.t0
        if elapsed >= self.cap.max_duration_s:
            self._stop("max duration")
        elif self.judge:
            self._look(elapsed)

    def _look(self, elapsed: float) -> None:
        try:
            view = read_view(self.run_dir, self.point, self.mode, self.load)
        except (OSError, ValueError) as e:  # a file being written: look again next time
            _debug(f"point {self.point}: not read ({e})")
            return
        if view is None:
            return
        a = assess(view, self.slos, self.cap.converge, self.cap.alpha)
        _debug(f"point {self.point} at {elapsed:.1f}s: {a.verdict} n={a.n} cut={a.warmup_cut} conv={a.converged}")
        if a.oversaturated:
            self.verdict = FAIL
            self._stop("over-saturated")
        elif elapsed >= self.cap.min_duration_s and a.n >= MIN_DECIDE:
            if a.verdict == FAIL or (a.verdict == PASS and a.converged):
                self.verdict = a.verdict
                self._stop(f"decided: {a.verdict}" if self.slos else "converged")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.pool.request_stop()


REMEASURED = ("interrupted", "server_down")  # stop reasons that leave a point out of the history
MAX_REMEASURE = 3  # a calibration point cut short is measured again at most this often


@dataclass
class SearchPlan:
    """The points of a search (a plan for `profiler.sweep.run_sweep`); fills `self.result`."""

    cap: CapacitySpec
    slos: dict[str, float]
    gpus: float = 1.0
    result: dict = field(default_factory=dict)
    watchers: dict = field(default_factory=dict)
    replay_until: int = 0  # points below this are finished (a resumed run): replayed, not measured
    recorded: dict = field(default_factory=dict)  # their search.json rows by point
    role: str = ""  # of the point the plan named last
    _resumed: tuple | None = None  # (first (load, n), the steps that follow it)

    def watched(self, i: int) -> bool:
        w = self.watchers.get(i)
        return w is not None and w.judge

    @property
    def integer(self) -> bool:
        return self.cap.over == "concurrency"

    def first(self) -> tuple:
        return self._resumed[0] if self._resumed is not None else self._first_point()

    def _first_point(self) -> tuple:
        return self._calibration()[0]

    def watch(self, i: int, load, pool, run_dir: Path):
        w = Watcher(self.cap, self.slos, run_dir, i, self.cap.over, float(load), pool,
                    judge=self.role != "calibration")
        self.watchers[i] = w
        return w

    def resume_at(self, run_dir: Path, next_point: int) -> None:
        """Go on from a run folder whose points 0..next_point-1 are finished (module docstring)."""
        self.replay_until = next_point
        self.recorded = {int(p["point"]): p for p in (read_search(run_dir) or {}).get("probes", [])}
        steps = self._steps(run_dir)
        try:
            self._resumed = (next(steps), steps)
        except StopIteration:
            raise UserError(f"--resume {run_dir}: the search had already ended (its answer is now in "
                            f"{SEARCH_JSON})") from None

    def points(self, run_dir: Path, pool):
        if self._resumed is None:
            return self._steps(run_dir)
        first, steps = self._resumed
        return itertools.chain([first], steps)

    def _measure(self, i: int, role: str) -> bool:
        """Name point i (True: the caller yields it to be measured; False: finished, replayed)."""
        self.role = role
        return i >= self.replay_until

    def _calibration(self) -> list[tuple]:
        if self.integer:
            return [(1, 4), (int(self.cap.hi), min(512, 2 * int(self.cap.hi)))]
        return [(self.cap.hi, max(8, math.ceil(5 * self.cap.hi)))]

    def _begin(self, run_dir: Path) -> dict:
        gpus = rf.read_json(run_dir / rf.MANIFEST).get("gpus") or []
        self.gpus = float(len(gpus)) or 1.0  # GPU-seconds = point seconds × GPUs (1 when none is seen)
        self.result.update(spec=self.cap.to_dict(), slos=self.slos, gpus=self.gpus, probes=[])
        return self.result

    def _steps(self, run_dir: Path):
        trail = self._begin(run_dir)
        history: list[Probe] = []
        calib = []
        i = 0
        for load, n in self._calibration():
            for _ in range(MAX_REMEASURE + 1):
                if self._measure(i, "calibration"):
                    yield load, n
                row = self._record(run_dir, i, load, "calibration", history)
                i += 1
                self._write(run_dir, None)
                if row.get("stop_reason") not in REMEASURED:
                    break
            calib.append(row)
        config = self._config(calib)
        trail["config"] = asdict(config)
        while True:
            nxt = next_probe(history, config)
            if isinstance(nxt, Stop):
                break
            if self._measure(i, "probe"):
                yield nxt, self.cap.max_requests
            self._record(run_dir, i, nxt, "probe", history)
            i += 1
            self._write(run_dir, None)
        self._write(run_dir, nxt)

    def _config(self, calib: list[dict]) -> SearchConfig:
        if self.integer:
            w0, x_max = calib[0]["mean_e2e_s"] or math.nan, calib[1]["req_per_s"] or math.nan
        else:
            w0, x_max = math.nan, calib[0]["req_per_s"] or math.nan
        start = start_load(x_max, w0, self.cap.lo, self.cap.hi, self.integer)
        self.result["start"] = {"x_max_req_per_s": _num(x_max), "w0_s": _num(w0), "start": start,
                                "rule": "N*/2 = X_max·W0/2" if self.integer else "X_max/2"}
        return SearchConfig(self.cap.lo, self.cap.hi, start, self.cap.tolerance, self.integer, self.cap.max_probes)

    def _record(self, run_dir: Path, i: int, load, role: str, history: list[Probe]) -> dict:
        row = self.recorded.get(i) if i < self.replay_until else None
        if row is None:
            row = self._assess_point(run_dir, i, load, role)
        self.result["probes"].append(row)
        if row["in_history"]:
            history.append(Probe(float(load), row["verdict"]))
        return row

    def _assess_point(self, run_dir: Path, i: int, load, role: str) -> dict:
        """Point i's search.json row: its verdict, intervals, warm-up cut, why it ended, seconds."""
        facts = next(f for f in rf.read_point_facts(run_dir) if int(f["point"]) == i)
        view = read_view(run_dir, i, self.cap.over, float(load))
        a = assess(view, self.slos, self.cap.converge, self.cap.alpha) if view is not None else Assessment(UNRESOLVED)
        w = self.watchers.get(i)
        # A verdict reached while running stands (the interval is valid at any stopping time); else
        # the one on all the point's requests.
        verdict = w.verdict if w is not None and w.verdict else a.verdict
        stop_reason = facts.get("stop_reason") or ""
        counts = (role == "probe" or verdict in (PASS, FAIL)) and stop_reason not in REMEASURED
        seconds = (int(facts["end_ns"]) - int(facts["start_ns"])) / 1e9
        ended = w.reason if w is not None and w.reason else (stop_reason or "all requests done")
        row = {"point": i, "load": float(load), "role": role, "verdict": verdict, "in_history": counts,
               "ended": ended, "stop_reason": stop_reason, "seconds": seconds, "gpu_seconds": seconds * self.gpus,
               **a.to_dict()}
        row["verdict"] = verdict
        return row

    def _write(self, run_dir: Path, stop: Stop | None) -> None:
        trail = self.result
        trail["gpu_seconds"] = sum(p["gpu_seconds"] for p in trail["probes"])
        if stop is not None:
            found = next((p for p in trail["probes"] if p["in_history"] and p["load"] == stop.found
                          and p["verdict"] == PASS), None)
            trail.update(stopped=stop.reason, notes=list(stop.notes), bracket=[stop.lo, stop.hi],
                         found_load=stop.found, found_point=found["point"] if found else None,
                         verdict=PASS if found else "none passed")
        rf.write_json(run_dir / SEARCH_JSON, trail)


@dataclass
class GridPlan(SearchPlan):
    """A fixed grid watched like search probes (`sweep --concurrency … --converge`): each point
    ends once decided and converged (or at --max-duration); search.json gets every point's
    verdict and the grid's answer, the highest passing load below the lowest non-passing one."""

    loads: tuple = ()

    def _first_point(self) -> tuple:
        return self.loads[0], self.cap.max_requests

    def watch(self, i: int, load, pool, run_dir: Path):
        self.watchers[i] = Watcher(self.cap, self.slos, run_dir, i, self.cap.over, float(load), pool)
        return self.watchers[i]

    def _steps(self, run_dir: Path):
        self._begin(run_dir)
        history: list[Probe] = []
        for i, load in enumerate(self.loads):  # a grid point cut short stays as it is, as in a plain sweep
            if self._measure(i, "grid"):
                yield load, self.cap.max_requests
            self._record(run_dir, i, load, "grid", history)
            self._write(run_dir, None)
        lo, hi, notes = bracket(history)
        self._write(run_dir, Stop("grid done", lo, lo, hi, notes))


def _debug(text: str) -> None:
    if os.environ.get("INFERPROF_DEBUG_WATCH"):
        print(f"watch: {text}", file=sys.stderr, flush=True)


def history_from(search: dict) -> list[Probe]:
    """The search history recorded in a search.json (what `next_probe` saw), for a resume."""
    return [Probe(float(p["load"]), p["verdict"]) for p in search.get("probes", []) if p.get("in_history")]


def read_search(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SEARCH_JSON
    return rf.read_json(path) if path.exists() else None


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def check_spec(cap: CapacitySpec, slos: dict[str, float]) -> None:
    """One-line errors for a search that cannot work."""
    if cap.find == "max-goodput" and not slos:
        raise UserError("--find max-goodput needs --slo, e.g. --slo ttft_p99=500ms")
    if cap.find == "max-throughput" and not slos and cap.over == "concurrency":
        raise UserError("--find max-throughput over concurrency needs --slo (a closed loop never over-saturates); "
                        "use --find-over rate to find the highest sustainable rate")
    if any(s.stat == "max" for s in slo_list(slos)):
        raise UserError("a max SLO cannot be shown to pass; use a percentile such as p99")
    if not 0 < cap.lo < cap.hi:
        raise UserError(f"--range {cap.lo:g},{cap.hi:g}: need 0 < LO < HI")
