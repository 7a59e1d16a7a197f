"""Run a sweep: points in order, each measured by the load generator and written as it finishes."""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backends import control
from backends.http1 import Timeouts
from backends.laghist import LagHistogram
from profiler import runfolder as rf
from profiler import traffic
from profiler.endpoint import SweepError, Target, build_workload, make_codec, preflight
from profiler.errors import Interrupted
from profiler.loadgen import (
    PointJob,
    WorkerPool,
    ahead_conns,
    default_workers,
    opening_allowance_ns,
    split_closed,
    split_open,
)
from profiler.points import summarize_run
from profiler.recorder import SPOOL_DIR, RecorderPool, RecordJob, idle_priority, spool_path
from profiler.spec import SweepSpec
from profiler.stopping import STOP_INTERRUPTED, STOP_REASONS, STOP_SERVER_DOWN, SweepSignals, wait_for_server
from workloads.arrivals import arrival_offsets
from workloads.lengths import parse_length
from workloads.requests import RequestSpec, build_requests

DURATION_POOL = 2000  # distinct requests cycled through in --duration mode
TELEMETRY_FLUSH_S = 10.0  # while a point runs, its telemetry samples are written this often


def _server_ttft_hist(before: str | None, after: str | None) -> dict | None:
    if not before or not after:
        return None
    try:
        from profiler.telemetry.histograms import histogram_delta, parse_histogram
    except ImportError:
        return None
    name = "vllm:time_to_first_token_seconds"
    try:
        delta = histogram_delta(parse_histogram(before, name), parse_histogram(after, name))
    except (KeyError, ValueError):
        return None
    if not delta or max(delta.values()) <= 0:
        return None
    return {str(k): v for k, v in delta.items()}


def run_sweep(spec: SweepSpec, target: Target, out_dir: str | Path, console: Console,
              command: list[str] | None = None, telemetry=None, on_point=None,
              pricing=None, resume=None, quality=None, plan=None) -> tuple[Path, pd.DataFrame]:
    """Measure every point of `spec` against `target`; returns (run folder, points table).

    `plan` (default: the fixed grid `spec.loads`) chooses the points as the sweep goes: see
    `FixedPlan` for what it answers; `profiler.capacity.SearchPlan` is the SLO search.
    `resume` (profiler.resume.Resume) continues that run folder from its first unfinished point;
    `quality`: a profiler.quality.plan.QualityPlan (eval requests mixed into each point, scored after it)."""
    first_i = resume.next_point if resume is not None else 0
    plan = plan if plan is not None else FixedPlan(spec, first_i)
    notices: list[str] = []
    codec = make_codec(target)
    pre = preflight(codec, build_requests(1, parse_length("8"), parse_length("2"), spec.seed))
    workload = _Workloads(spec, target, codec, quality, notices)
    first = workload(first_i, *plan.first())
    for note in notices:
        console.print(f"[yellow]note:[/] {note}")
    if callable(telemetry):  # built only once the endpoint is known to work
        telemetry = telemetry()
    run_dir, manifest = _open_run(spec, target, out_dir, command or sys.argv, pre, notices, resume, quality)
    writer = rf.RunWriter(run_dir)
    pool, recorders = _pools(spec)
    points = summarize_run(run_dir) if first_i else pd.DataFrame()
    try:
        _start_telemetry(telemetry, pricing, manifest, run_dir)
        page = telemetry.server_metrics_url if telemetry is not None else None
        with _progress(console) as progress, SweepSignals(pool.stop) as signals:
            for i, (load, n_req) in enumerate(plan.points(run_dir, pool), start=first_i):
                requests, payloads = first if i == first_i else workload(i, load, n_req)
                pool.stop[0] = 0  # then the check: a signal from now on stops this point
                _stop_if_interrupted(signals, manifest, i)
                task = progress.add_task(_label(spec, i, load),
                                         total=len(requests) if spec.duration_s is None else None)
                live = _live(progress, task, console, plan.watch(i, load, pool, run_dir))
                facts, results, recorded = _measure_point(
                    (pool, recorders, writer), spec, target, codec, requests, payloads, i, load, live,
                    telemetry, page, workload.eval_maps.pop(i, None), watched=plan.watched(i))
                stop = int(pool.stop[0])
                facts["stop_reason"] = STOP_REASONS.get(stop, "")
                facts.update(workload.extra_facts.pop(i, {}))
                n = _record_point(writer, facts, recorded, telemetry)
                unscored = _score_point(quality, run_dir, i, console)
                points = summarize_run(run_dir)
                rf.write_points_csv(run_dir, points)
                progress.update(task, completed=n, total=n)
                if on_point:
                    on_point(points.iloc[-1])
                if unscored:
                    raise SweepError(f"{unscored}; {i + 1} measured point(s) kept in {run_dir}")
                _after_point(spec, target, (manifest, run_dir, console, signals), i, stop, results, recorded,
                             points.iloc[-1])
    finally:
        recorders.close()
        pool.close()
        _remove_empty(run_dir / SPOOL_DIR)
        _finish(telemetry, writer, manifest, run_dir)
    return run_dir, points


def _pools(spec: SweepSpec):
    """The load generator and its recorders: local processes, or Ray actors (profiler/raypool.py)."""
    if spec.ray:
        from profiler.raypool import RayPool, parse_labels

        pool = RayPool(spec.ray, spec.workers, parse_labels(spec.ray_nodes), spec.on_node_loss)
        return pool, pool.recorders()  # the actors parse their own records and ship them back
    pool = WorkerPool(spec.workers or max(default_workers(spec.mode, load) for load in spec.loads))
    try:
        return pool, RecorderPool(len(pool))  # one per worker: records reach disk while a point runs
    except BaseException:
        pool.close()
        raise


def _open_run(spec: SweepSpec, target: Target, out_dir, command: list[str], pre, notices: list[str], resume,
              quality=None):
    """The run folder and its manifest: a new one, or the resumed one (told it continues)."""
    if resume is not None:
        return resume.run_dir, resume.continue_manifest(command)
    run_dir = rf.new_run_dir(out_dir)
    extra = {"quality": quality.manifest(target.model)} if quality is not None else {}
    manifest = rf.start_manifest(
        run_dir, command=command,
        endpoint={"url": target.url, "backend": target.backend, "api": target.api, "model": target.model},
        preflight=pre, spec=spec.to_dict(), slos=spec.slos, notices=notices, **target.extra_manifest, **extra)
    if quality is not None:
        quality.copy_into(run_dir)
    return run_dir, manifest


def _stop_if_interrupted(signals: SweepSignals, manifest: dict, next_point: int) -> None:
    """After SIGINT/SIGTERM: the sweep ends here, with the point it was on recorded."""
    if signals.signum:
        manifest["ended"] = {"reason": f"interrupted by signal {signals.signum}", "next_point": next_point}
        raise Interrupted(signals.signum)


def _lost_server(recorded, row) -> bool:
    """Requests of the point could not connect or were reset: is the server still there?"""
    if any(r.connect_errors for r in recorded):
        return True
    return sum(float(row.get(c, 0) or 0) for c in ("err_connect", "err_timeout_connect", "err_reset")) > 0


def _await_server(spec: SweepSpec, target: Target, manifest: dict, run_dir: Path, i: int, console: Console,
                  down: bool) -> None:
    """The server may have stopped answering during point i (`down`: it did): unless it answers
    at once, wait (bounded) for it to come back, then go on; or end the sweep, every finished
    point kept and the reason in the manifest."""
    if not down and wait_for_server(target.url, target.backend, 0.0) is not None:
        return
    console.print(f"[yellow]server at {target.url} stopped answering at point {i}; "
                  f"waiting up to {spec.server_down_wait_s:g} s for it[/]")
    waited = wait_for_server(target.url, target.backend, spec.server_down_wait_s)
    manifest.setdefault("events", []).append(
        {"point": i, "event": "server_down", "waited_s": None if waited is None else round(waited, 3),
         "back": waited is not None})
    rf.write_json(run_dir / rf.MANIFEST, manifest)
    if waited is None:
        manifest["ended"] = {"reason": f"server at {target.url} stopped answering at point {i} and did not "
                                       f"come back within {spec.server_down_wait_s:g} s", "next_point": i + 1}
        raise SweepError(f"server at {target.url} stopped answering at point {i}; "
                         f"{i + 1} point(s) kept in {run_dir}")
    console.print(f"server is back after {waited:.1f} s; the sweep goes on")


class _Workloads:
    """What each point sends: synthetic requests, or production-like ones (profiler/traffic.py),
    with eval requests mixed in (profiler/quality/); encoded before the point starts."""

    def __init__(self, spec: SweepSpec, target: Target, codec, quality, notices: list[str]):
        self.spec, self.target, self.codec, self.quality, self.notices = spec, target, codec, quality, notices
        self.extra_facts: dict[int, dict] = {}  # per point, from production-like workloads
        self.eval_maps: dict[int, dict] = {}  # per point, which requests are eval items

    def __call__(self, i: int, load, n: int | None = None) -> tuple[list[RequestSpec], list]:
        spec = self.spec
        if n is None:
            n = spec.requests_for(load) if spec.duration_s is None else max(spec.requests or 0, DURATION_POOL)
        if traffic.active(spec):
            reqs, self.extra_facts[i] = traffic.build_point(spec, self.target, n, self.notices,
                                                            spec.seed + 1009 * i, i)
        else:
            reqs = build_workload(spec, self.target, n, self.notices, seed=spec.seed + 1009 * i)
        payloads = [self.codec.encode(r) for r in reqs]
        if self.quality is not None:
            q = self.quality
            span = 0 if spec.duration_s is None else max(4 * len(q.pairs(i, spec.seed)), spec.requests or 0)
            reqs, payloads, self.eval_maps[i] = q.mix(self.codec, reqs, payloads, i, spec.seed, span)
        return reqs, payloads


def _after_point(spec: SweepSpec, target: Target, ctx, i: int, stop: int, results, recorded, row) -> None:
    """The checks after a recorded point: a broken load generator ends the sweep; a signal ends it
    (the point kept); a server that went away is waited for (bounded)."""
    manifest, run_dir, console, signals = ctx
    _stop_if_broken(results, recorded, i, run_dir)
    if stop == STOP_INTERRUPTED:
        _stop_if_interrupted(signals, manifest, i + 1)
    if stop == STOP_SERVER_DOWN or _lost_server(recorded, row):
        _await_server(spec, target, manifest, run_dir, i, console, stop == STOP_SERVER_DOWN)


class FixedPlan:
    """The points of a plain sweep: `spec.loads` in order, each with the default request count.

    A plan answers `first()` (the first point's (load, requests or None), known before the run
    folder exists), `points(run_dir, pool)` (an iterator of (load, requests or None), advanced
    once the previous point is recorded) and `watch(i, load, pool, run_dir)` (None, or a callable
    given the finished-request count a few times a second while the point runs, which may end it
    early with `pool.request_stop()`) and `watched(i)` (True when point i has such a watcher: its
    records are then written at normal priority, so the watcher sees them while the point runs)."""

    def __init__(self, spec: SweepSpec, first_i: int = 0):
        self.spec, self.first_i = spec, first_i  # first_i > 0: a resumed sweep's first unfinished point

    def first(self) -> tuple:
        return self.spec.loads[self.first_i], None

    def points(self, run_dir: Path, pool):
        return ((load, None) for load in self.spec.loads[self.first_i:])

    def watch(self, i: int, load, pool, run_dir: Path):
        return None

    def watched(self, i: int) -> bool:
        """Whether point i has a watcher reading its records while it runs."""
        return False


def _live(progress: Progress, task, console: Console, watch):
    """The progress callback: the display (on a terminal) and the plan's watcher."""
    show = console.is_terminal
    if not show and watch is None:
        return None

    def live(done: int) -> None:
        if show:
            progress.update(task, completed=done)
        if watch is not None:
            watch(done)
    return live


def _label(spec: SweepSpec, i: int, load) -> str:
    return f"point {i}: {'concurrency' if spec.mode == 'concurrency' else 'rate'} {load:g}"


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False,
                    refresh_per_second=2,  # the display shares the client's cores: keep it rare
                    disable=not console.is_terminal)


def _start_telemetry(telemetry, pricing, manifest: dict, run_dir: Path) -> None:
    if telemetry is not None:
        telemetry.start()
        manifest["gpus"] = telemetry.gpu_info()
    if pricing is not None:  # priced now so points.csv carries cost columns as the sweep goes
        manifest["pricing"] = pricing(manifest.get("gpus") or [])
    rf.write_json(run_dir / rf.MANIFEST, manifest)


def _score_point(quality, run_dir: Path, i: int, console: Console) -> str:
    """Score the point's eval answers now that its load has ended (profiler/quality/scoring.py)."""
    if quality is None:
        return ""
    from profiler.quality.scoring import score_point

    if quality.judge is not None:
        console.print(f"point {i}: the judge is scoring its answers")
    return score_point(quality, run_dir, i)


def _measure_point(pools, spec, target, codec, requests, payloads, i, load, live, telemetry, page, answers=None,
                   watched=False):
    """Run one point, with a telemetry reading and a scrape of the server's page on each side."""
    if telemetry is not None:
        telemetry.sample_now()  # a reading just before the point, for counters
    before = control.scrape(page) if page else None
    with _TelemetryFlush(telemetry, pools[2]):
        facts, results, recorded = _run_point(pools, spec, target, codec, requests, payloads, i, load, live,
                                              answers, watched)
    if telemetry is not None:
        telemetry.sample_now()  # and one just after it
    after = control.scrape(page) if page else None
    hist = _server_ttft_hist(before, after)
    if hist:
        facts["server_ttft_hist"] = hist
    facts.update(traffic.prefix_cache_delta(before, after))
    return facts, results, recorded


class _TelemetryFlush:
    """While a point runs, its telemetry goes to disk every TELEMETRY_FLUSH_S from a SCHED_IDLE
    thread of the parent (pages parsed there, on a core nobody else wants), so the parent's memory
    does not grow with the point's length either. Stopped before the point's end is recorded."""

    def __init__(self, telemetry, writer: rf.RunWriter):
        self.telemetry, self.writer = telemetry, writer
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="inferprof-telemetry-flush")

    def _run(self) -> None:
        idle_priority()
        while not self.stop.wait(TELEMETRY_FLUSH_S):
            try:
                self.writer.add_samples(self.telemetry.drain())
            except Exception:  # telemetry never stops a sweep: what is left is drained at the end
                return

    def __enter__(self) -> _TelemetryFlush:
        if self.telemetry is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(60.0)  # one drain at most (the add_samples below must not overlap it)


def _record_point(writer: rf.RunWriter, facts: dict, recorded, telemetry) -> int:
    """Close the point: its telemetry, then its raw facts (last: the point is finished once they
    are in points.jsonl). Its requests and chunks are on disk already (the recorders wrote them).
    Returns its request count."""
    if telemetry is not None:
        writer.add_samples(telemetry.drain())
    rf.append_point_facts(writer.run_dir, facts)
    return sum(r.requests for r in recorded)


def _stop_if_broken(results, recorded, i: int, run_dir: Path) -> None:
    """The load generator or a recorder failed (not the server): the sweep cannot go on."""
    errs = [res.error for res in results if res.error]
    if errs:
        raise SweepError(f"load generator failed at point {i}: {errs[0]}")
    errs = [r.error for r in recorded if r.error]
    if errs:
        raise SweepError(f"recording failed at point {i}: {errs[0]}; unparsed records stay in "
                         f"{run_dir / SPOOL_DIR}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # a segment the recorder just deleted
        return 0


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only when empty: the spools of a failed point stay
    except OSError:
        pass


def _finish(telemetry, writer: rf.RunWriter, manifest: dict, run_dir: Path) -> None:
    if telemetry is not None:
        telemetry.stop()
        manifest["telemetry"] = {"notices": telemetry.notices, "errors": dict(telemetry.errors)}
        writer.add_samples(telemetry.drain())
    manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rf.write_json(run_dir / rf.MANIFEST, manifest)


def _run_point(pools: tuple[WorkerPool, RecorderPool, rf.RunWriter], spec: SweepSpec, target: Target, codec,
               requests, payloads, point: int, load, on_progress=None, answers=None, watched: bool = False):
    pool, recorders, writer = pools
    run_dir = writer.run_dir
    n = len(requests)
    k = max(1, min(len(pool), spec.workers or pool.workers_for(spec.mode, load)))
    closed = spec.mode == "concurrency"
    ahead = ahead_conns(closed, math.ceil(int(load) / k) if closed else 0, spec.max_concurrency or 4096)
    start_ns = time.perf_counter_ns() + pool.start_margin_ns + opening_allowance_ns(codec.endpoint, ahead)
    stop_ns = start_ns + int(spec.duration_s * 1e9) if spec.duration_s else 0
    cycle = spec.duration_s is not None
    common = dict(point=point, endpoint=codec.endpoint, codec=codec, total_specs=n, start_ns=start_ns,
                  stop_ns=stop_ns, cycle=cycle, request_timeout_s=spec.request_timeout_s,
                  tokenizer_path=target.tokenizer, transport=spec.transport,
                  timeouts=Timeouts(spec.connect_timeout_s, spec.ttft_timeout_s, spec.idle_timeout_s),
                  max_error_rate=spec.max_error_rate, error_window=spec.error_window, live=watched)
    jobs: list[PointJob] = []
    index_of = {r.index: j for j, r in enumerate(requests)}
    if spec.mode == "concurrency":
        split = traffic.split_sessions if traffic.is_sessions(requests) else split_closed
        for w, (streams, reqs) in enumerate(split(requests, int(load), k)):
            jobs.append(PointJob(worker=w, requests=reqs, payloads=[payloads[index_of[r.index]] for r in reqs],
                                 streams=streams, **common))
    else:
        n_arr = n if not cycle else max(1, math.ceil(load * spec.duration_s))
        offsets = traffic.arrival_offsets(requests) or arrival_offsets(n_arr, float(load), spec.arrival,
                                                                      seed=spec.seed + point)
        sched = [start_ns + int(o * 1e9) for o in offsets]
        reqs_all = [requests[j % n] for j in range(n_arr)]
        if cycle and n_arr > n:  # give cycled requests unique ids, as the closed loop does
            reqs_all = [RequestSpec(r.index + (j // n) * n, r.prompt, r.input_tokens, r.max_tokens, r.input_exact)
                        for j, r in enumerate(reqs_all)]
        for w, (reqs, arr) in enumerate(split_open(reqs_all, sched, k)):
            jobs.append(PointJob(worker=w, requests=reqs, payloads=[payloads[r.index % n] for r in reqs],
                                 arrivals_ns=arr, max_in_flight=spec.max_concurrency or 4096, **common))
            jobs[-1].total_specs = n_arr if cycle else n
    expected = (spec.duration_s or 0) + spec.request_timeout_s + 60 + sum(r.think_s for r in requests)
    if spec.mode == "rate":
        expected += n / float(load)
    record_jobs = []
    for job in jobs:
        job.spool = str(spool_path(run_dir, point, job.worker))
        record_jobs.append(RecordJob.of(job, spool=job.spool, run_dir=str(run_dir)))
        if answers:  # eval requests: the recorder keeps their text (answers.parquet/)
            record_jobs[-1].answers = {k: answers[k % n] for k in record_jobs[-1].specs if k % n in answers}
    recorders.start(record_jobs)
    results = pool.run(jobs, timeout_s=expected + 60, on_progress=on_progress)
    # Bounded: what the recorders have left is parsed at well over 1 MB/s.
    backlog = sum(_size(p) for p in (run_dir / SPOOL_DIR).glob(f"point-{point:05d}-*.bin"))
    recorded = recorders.finish(record_jobs, timeout_s=120 + backlog / 1e6)
    facts = _point_facts(spec, point, load, len(jobs), (start_ns, stop_ns), results, recorded, backlog)
    facts.update(pool.point_facts())  # Ray actors: per-node facts and Ray's overhead (profiler/nodefacts.py)
    return facts, results, recorded


def _point_facts(spec: SweepSpec, point: int, load, workers: int, window: tuple[int, int], results, recorded,
                 backlog: int) -> dict:
    """The point's line of points.jsonl: what ran, the client's load (CPU, loop lag) and how the
    records reached the run folder."""
    start_ns, stop_ns = window
    lags = LagHistogram()
    for res in results:
        lags.extend(res.lag_us)
    cpu = [res.cpu_s / res.wall_s for res in results if res.wall_s > 0]
    ends = [r.max_end_ns for r in recorded if r.max_end_ns]
    return {
        "point": point, "mode": spec.mode, "load": load, "workers": workers, "start_ns": start_ns,
        "stop_ns": stop_ns, "end_ns": max(ends) if ends else time.perf_counter_ns(),
        "client": {
            "cpu_frac_max_worker": max(cpu) if cpu else math.nan,
            "cpu_frac_total": sum(cpu),
            "lag_p99_ms": float(lags.percentile(99) / 1000) if len(lags) else math.nan,
            "lag_max_ms": float(lags.max() / 1000) if len(lags) else math.nan,
            "lag_samples": len(lags),
            "threads": sum(res.threads for res in results),
            "conns_opening_at_start": sum(res.opening_at_start for res in results),
            # "kernel": every worker stamped chunks with the kernel's arrival time (backends/rxstamp.py)
            "chunk_stamps": "kernel" if results and all(r.kernel_stamps for r in results) else "after recv",
        },
        "recorder": {  # how the records reached the run folder (profiler/recorder.py)
            "parts": sum(r.parts for r in recorded),
            "spool_bytes": sum(r.bytes for r in recorded),
            "backlog_bytes_at_end": backlog,
            "flush_lag_max_s": max((r.flush_lag_s for r in recorded), default=0.0),
        },
    }

