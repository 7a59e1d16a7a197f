"""Load-generator workers as Ray actors (`inferprof sweep --ray ADDRESS`), one per bundle of a
SPREAD placement group, so the load comes from many machines.

Each actor runs exactly the local worker's code (`loadgen.run_job`: its epoll loop, the same
spool writer) on its node, then parses its spool there with the recorder's code
(`recorder.Tail`) into columnar Arrow tables (requests, chunks), which Ray ships back as
buffers: never one Python object per chunk. The driver puts each node's times onto its own
clock (`profiler.clocksync`, measured at the point's start and end) and writes the tables with
the same `RunWriter`, so the run folder has the same files and columns as a local run, plus the
`node` of each request and per-node facts in points.jsonl (`nodes`, `ray`).

The point starts on every node at one driver instant (`start_ns`, converted per node: the
barrier). While it runs the driver polls each actor a few times a second (its finished-request
count and stop byte): a stop raised anywhere (error policy, SIGINT, a decided capacity probe)
is passed to every actor. A node that dies mid-point loses the requests it had not shipped (all
of that point's, unless the point is watched: a `--find` probe is parsed on the node while it runs
and its parts fetched every poll); the point is marked (`nodes_lost`, trust) and
`--on-node-loss continue` goes on with the remaining actors, `stop` ends the sweep after
recording it.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from profiler.clocksync import ClockOffset, drift_ppm, measure
from profiler.errors import UserError
from profiler.loadgen import PointJob, WorkerResult
from profiler.recorder import RecordJob, RecordSummary
from profiler.stopping import STOP_DECIDED

CONNECT_TIMEOUT_S = 5.0  # an unreachable --ray address fails within this
PLACE_TIMEOUT_S = 60.0  # the placement group must be placed within this
START_MARGIN_NS = 2_000_000_000  # clock sync and dispatch to every node happen before the barrier
POLL_S = 0.5
# requests.parquet columns holding instants (0 = none): shifted onto the driver's clock
INSTANT_COLUMNS = ("scheduled_ns", "send_ns", "headers_ns", "first_event_ns", "first_content_ns",
                   "last_content_ns", "end_ns", "first_answer_ns")
_STARTED_RAY = False  # whether this process called ray.init (then close() shuts it down)


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray on this machine: pip install 'inferprof[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """HOST:PORT of `ray://HOST:PORT` or `HOST:PORT`; None for `auto`."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address!r}: use auto, ray://HOST:PORT or HOST:PORT")
    return host.strip("[]"), int(port)


def _probe(host: str, port: int, address: str) -> None:
    """Ray's own client retries an unreachable address for over a minute: try TCP first."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"--ray {address}: no Ray cluster answers at {host}:{port} ({e.strerror or e})") from None


def _resolve_auto(address: str) -> str:
    """`auto`: RAY_ADDRESS, else the latest local `ray start` (as ray.init would find it), so an
    address that no longer answers is probed instead of waited on."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray without it: let ray.init find the cluster
        return address
    try:
        found = canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError) as e:
        raise UserError(f"--ray auto: no Ray cluster found ({str(e).splitlines()[0]}); "
                        "set RAY_ADDRESS or pass HOST:PORT") from None
    return found or address


def _code_modules() -> list[str]:
    """inferprof's packages, shipped to every node (py_modules) so actors run the driver's code."""
    root = Path(__file__).resolve().parent.parent
    return [str(root / name) for name in ("profiler", "backends", "workloads")]


def connect(address: str) -> None:
    """ray.init against `address` (bounded: CONNECT_TIMEOUT_S for an unreachable one)."""
    global _STARTED_RAY
    ray = require_ray()
    if ray.is_initialized():
        return
    resolved = _resolve_auto(address) if address == "auto" else address
    hp = _host_port(resolved)
    if hp is not None:
        _probe(*hp, address)
    target = resolved if resolved == "auto" or resolved.startswith("ray://") else f"{hp[0]}:{hp[1]}"
    try:
        ray.init(address=target, runtime_env={"py_modules": _code_modules()}, namespace="inferprof",
                 logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"--ray {address}: cannot join the Ray cluster ({str(e).splitlines()[0]})") from None
    _STARTED_RAY = True


def parse_labels(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


class _LoadActor:
    """One load-generator worker on a Ray node (threaded: `poll`/`set_stop` answer while `run` runs)."""

    def __init__(self):
        from profiler import loadgen

        self.stop = bytearray(1)  # the worker's stop byte (profiler.stopping), as a local pool shares
        self.progress = [0]
        loadgen._STOP = self.stop
        loadgen._PROGRESS = (self.progress, 0)
        sys.setswitchinterval(0.0005)  # as a local worker: hand the GIL over sooner
        self.out = _Tables()
        import profiler.recorder  # noqa: F401  (imported now, not in the first point's parse)
        import profiler.runfolder  # noqa: F401

    def identity(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(), "pid": os.getpid(), "cpus": os.cpu_count()}

    def clock(self) -> int:
        return time.perf_counter_ns()

    def poll(self) -> tuple[int, int]:
        return self.progress[0], self.stop[0]

    def set_stop(self, code: int) -> None:
        if not self.stop[0]:
            self.stop[0] = code

    def take(self) -> dict:
        """The parts parsed so far and not yet taken (a watched point ships them as it runs)."""
        return self.out.take()

    def run(self, job: PointJob, record: RecordJob, clock: ClockOffset) -> dict:
        """The point on this node: driver instants converted to this clock, the load, then its
        spool parsed into Arrow tables (times still on this node's clock)."""
        from profiler.loadgen import run_job
        from profiler.recorder import Tail, record_point, segment

        entered = time.perf_counter_ns()
        self.stop[0], self.progress[0] = 0, 0
        self.out = out = _Tables()
        tmp = tempfile.mkdtemp(prefix="inferprof-ray-")
        try:
            job, record = _on_node(job, record, clock, str(Path(tmp) / f"point-{job.point:05d}"))
            if record.live:  # watched (a capacity probe): parse while it runs, as a local recorder does
                Path(segment(record.spool, 0)).touch()
                box: list[WorkerResult] = []
                summary = record_point(record, out, lambda: box.append(run_job(job)))
                result, loaded = box[0], time.perf_counter_ns()
            else:  # the load alone on this node's cores, then the parse
                result = run_job(job)
                loaded = time.perf_counter_ns()
                tail = Tail(record, out)
                try:
                    tail.drain()
                finally:
                    tail.close()
                summary = tail.summary
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {"result": result, "tables": {**out.take(), "summary": summary}, "entered_ns": entered,
                "loaded_ns": loaded, "done_ns": time.perf_counter_ns()}


def _on_node(job: PointJob, record: RecordJob, clock: ClockOffset, spool: str) -> tuple[PointJob, RecordJob]:
    to_node = clock.to_node
    arrivals = [to_node(t) for t in job.arrivals_ns] if job.arrivals_ns is not None else None
    job = replace(job, start_ns=to_node(job.start_ns), stop_ns=to_node(job.stop_ns), arrivals_ns=arrivals,
                  spool=spool)
    record = replace(record, spool=spool, run_dir="", cancel_after_ns=to_node(record.cancel_after_ns))
    return job, record


class _Tables:
    """A RunWriter stand-in for `recorder.Tail`: keeps the parts as Arrow tables until taken."""

    def __init__(self):
        self.lock = threading.Lock()  # the recorder thread adds, an actor call takes
        self.requests, self.chunks, self.answers = [], [], []

    def add_records(self, point: int, requests, chunks) -> None:
        with self.lock:
            self.requests.append(requests)
            self.chunks.append(chunks)

    def add_answers(self, point: int, answers: list) -> None:
        with self.lock:
            self.answers.extend(answers)

    def take(self) -> dict:
        with self.lock:
            out = {"requests": self.requests, "chunks": self.chunks, "answers": self.answers}
            self.requests, self.chunks, self.answers = [], [], []
        return out


def shift_tables(requests, chunks, offset_ns: int, node: str):
    """The tables' instants on the driver's clock (0 stays 0) and each request's node."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def shifted(col):
        return pc.if_else(pc.equal(col, 0), col, pc.add(col, pa.scalar(offset_ns, pa.int64())))

    for name in INSTANT_COLUMNS:
        if name in requests.column_names:
            i = requests.column_names.index(name)
            requests = requests.set_column(i, name, shifted(requests[name]))
    i = requests.column_names.index("node")
    requests = requests.set_column(i, "node", pa.array([node] * requests.num_rows, pa.string()))
    chunks = chunks.set_column(chunks.column_names.index("t_ns"), "t_ns", shifted(chunks["t_ns"]))
    return requests, chunks


class RayPool:
    """The WorkerPool interface (`run`, `request_stop`, `close`, `len`, `stop`) over Ray actors."""

    start_margin_ns = START_MARGIN_NS  # clock sync and dispatch to every node before the barrier

    def __init__(self, address: str, workers: int = 0, labels: list[str] | None = None,
                 on_node_loss: str = "continue"):
        ray = require_ray()
        connect(address)
        self.ray = ray
        self.on_node_loss = on_node_loss
        self.stop = bytearray(1)  # as WorkerPool.stop: SweepSignals and the sweep set it
        self.record_jobs: dict[int, RecordJob] = {}  # the point's, by worker (RayRecorders.start)
        self.writers: dict[tuple[str, int], object] = {}  # a RunWriter per (run folder, worker)
        self.last: dict = {}  # the last point's per-node facts (point_facts)
        n = workers or _alive_nodes(ray)
        self.pg = _placement_group(ray, n, labels or [])
        self.actors = _start_actors(ray, self.pg, n)
        try:
            self.identity = ray.get([a.identity.remote() for a in self.actors], timeout=PLACE_TIMEOUT_S)
        except Exception as e:
            self.close()
            raise UserError(f"--ray {address}: the load-generator actors did not start ({type(e).__name__})") from None

    def __len__(self) -> int:
        return len(self.actors)

    def run(self, jobs: list[PointJob], timeout_s: float, on_progress=None) -> list[WorkerResult]:
        """One point on the actors: clocks measured, jobs sent (instants on the driver's clock),
        progress and stops relayed until every actor answered; each answer written at once."""
        ray = self.ray
        if not self.actors:
            raise UserError("--ray: every load-generator actor was lost; finished points are kept")
        self.last = {"summaries": {}, "actors": {}, "lost": [], "identity": dict(enumerate(self.identity)),
                     "sends": {}, "finished": 0}
        clocks = {j.worker: self._clock(j.worker) for j in jobs}
        live = any(getattr(self.record_jobs.get(j.worker), "live", False) for j in jobs)
        refs = {}
        results = {j.worker: WorkerResult(j.worker, []) for j in jobs}
        for job in jobs:
            if clocks[job.worker] is None:
                results[job.worker] = self._lose(job.worker, "actor unreachable at the point's start")
                continue
            record = self.record_jobs.get(job.worker) or RecordJob.of(job)
            refs[self.actors[job.worker].run.remote(job, record, clocks[job.worker])] = job
        limit = time.monotonic() + timeout_s
        relayed = 0
        while refs and time.monotonic() < limit:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                job = refs.pop(ref)
                results[job.worker] = self._collect(ref, job, clocks[job.worker])
            if live:  # a watcher reads the point's records while it runs: fetch what is parsed
                self._take(list(refs.values()), clocks)
            relayed = self._relay([j.worker for j in refs.values()], relayed, on_progress)
        for job in refs.values():  # bounded: past the point's time limit (as WorkerPool kills its process)
            ray.kill(self.actors[job.worker])
            results[job.worker] = WorkerResult(job.worker, [], error="worker did not finish in time")
        self._drop_lost()
        return [results[j.worker] for j in jobs]

    def _take(self, running: list[PointJob], clocks: dict) -> None:
        for job in running:
            try:
                parts = self.ray.get(self.actors[job.worker].take.remote(), timeout=10)
            except Exception:  # its run() reports the loss
                continue
            self._write(job, parts, clocks[job.worker].offset_ns, self.identity[job.worker]["node"])

    def _clock(self, w: int) -> ClockOffset | None:
        try:
            return measure(lambda: self.ray.get(self.actors[w].clock.remote(), timeout=10))
        except Exception:  # a dead actor or node
            return None

    def _relay(self, running: list[int], relayed: int, on_progress) -> int:
        """Progress to the display and the plan's watcher; a stop raised anywhere to every actor."""
        ray = self.ray
        asked = {w: self.actors[w].poll.remote() for w in running}  # all at once: one round trip
        polls = {}
        for w, ref in asked.items():
            try:
                polls[w] = ray.get(ref, timeout=5)
            except Exception:  # its run() reports the loss
                continue
        if not self.stop[0]:
            self.stop[0] = next((code for _, code in polls.values() if code), 0)
        if on_progress is not None:
            on_progress(sum(n for n, _ in polls.values()) + self.last.get("finished", 0))
        if self.stop[0] and self.stop[0] != relayed:
            for w in running:
                self.actors[w].set_stop.remote(int(self.stop[0]))
            relayed = self.stop[0]
        return relayed

    def _collect(self, ref, job: PointJob, start: ClockOffset) -> WorkerResult:
        """An actor's answer: its tables on the driver's clock, written; its facts kept."""
        w = job.worker
        try:
            out = self.ray.get(ref)
        except Exception as e:
            return self._lose(w, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        got = time.perf_counter_ns()
        end = self._clock(w) or start
        offset = start.offset_ns  # one offset for all of a node's point: parts shipped mid-point used it
        tables = out["tables"]
        summary = tables["summary"]
        summary.max_end_ns = summary.max_end_ns + offset if summary.max_end_ns else 0
        self.last["summaries"][w] = summary
        self.last["finished"] += summary.requests
        self._write(job, tables, offset, self.identity[w]["node"])
        res: WorkerResult = out["result"]
        self.last["actors"][w] = _actor_facts(job, out, res, self.last["sends"][w], start, end, got)
        return res

    def _write(self, job: PointJob, tables: dict, offset: int, node: str) -> None:
        """Append the actor's parts to the run folder; keeps [requests, first send, last send]."""
        import pyarrow.compute as pc

        from profiler.runfolder import RunWriter

        record = self.record_jobs.get(job.worker)
        writer = None
        if record is not None and record.run_dir:
            key = (record.run_dir, job.worker)
            writer = self.writers.setdefault(key, RunWriter(Path(record.run_dir), tag=f"w{job.worker:03d}"))
        sends = self.last["sends"].setdefault(job.worker, [0, 0, 0])  # requests, first and last send
        for req, chunks in zip(tables["requests"], tables["chunks"], strict=True):
            req, chunks = shift_tables(req, chunks, offset, node)
            if req.num_rows:
                lo, hi = pc.min_max(req["send_ns"]).values()
                sends[:] = [sends[0] + req.num_rows, min(sends[1] or lo.as_py(), lo.as_py()), max(sends[2], hi.as_py())]
            if writer is not None:
                writer.add_records(job.point, req, chunks)
        if writer is not None and tables["answers"]:
            writer.add_answers(job.point, tables["answers"])

    def _lose(self, w: int, why: str) -> WorkerResult:
        ident = self.identity[w] if w < len(self.identity) else {}
        shipped = self.last["sends"].get(w, [0])[0]  # parsed while it ran (a watched point): kept
        self.last["lost"].append({"worker": w, "node": ident.get("node", ""), "why": why, "requests_kept": shipped})
        err = "" if self.on_node_loss == "continue" else f"node {ident.get('node', '?')[:12]} lost mid-point: {why}"
        return WorkerResult(w, [], error=err)

    def _drop_lost(self) -> None:
        """--on-node-loss continue: later points run on the actors left."""
        lost = {x["worker"] for x in self.last["lost"]}
        if not lost:
            return
        self.actors = [a for w, a in enumerate(self.actors) if w not in lost]
        self.identity = [x for w, x in enumerate(self.identity) if w not in lost]

    def workers_for(self, mode: str, load: float) -> int:
        """Every actor: the cluster was sized for the load (--workers or one per node)."""
        return len(self)

    def point_facts(self) -> dict:
        """points.jsonl additions of the last point: per node, and Ray's own overhead."""
        from profiler.nodefacts import point_facts

        return point_facts(self.last)

    def request_stop(self) -> None:
        if not self.stop[0]:
            self.stop[0] = STOP_DECIDED

    def close(self) -> None:
        global _STARTED_RAY
        ray = self.ray
        for a in getattr(self, "actors", []):
            try:
                ray.kill(a)
            except Exception:  # already gone
                pass
        try:
            ray.util.remove_placement_group(self.pg)
        except Exception:
            pass
        if _STARTED_RAY:
            ray.shutdown()
            _STARTED_RAY = False

    def recorders(self) -> RayRecorders:
        return RayRecorders(self)


def _alive_nodes(ray) -> int:
    """Default --workers with --ray: one actor per node with a CPU."""
    return max(1, sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1))


def _placement_group(ray, n: int, labels: list[str]):
    """n bundles of one CPU spread over the nodes; with labels, bundle i also asks for a sliver of
    custom resource labels[i % len] (set by `ray start --resources='{"LABEL": 1}'`)."""
    from ray.util.placement_group import placement_group

    bundles = [{"CPU": 1.0, **({labels[i % len(labels)]: 0.001} if labels else {})} for i in range(n)]
    pg = placement_group(bundles, strategy="SPREAD")
    try:
        ray.get(pg.ready(), timeout=PLACE_TIMEOUT_S)
    except Exception:
        ray.util.remove_placement_group(pg)
        have = ray.cluster_resources()
        raise UserError(f"--ray: {n} load-generator actors of 1 CPU{' with labels ' + ','.join(labels) if labels else ''} "
                        f"could not be placed within {PLACE_TIMEOUT_S:g} s (the cluster has "
                        f"{have.get('CPU', 0):g} CPUs); lower --workers or add nodes") from None
    return pg


def _start_actors(ray, pg, n: int) -> list:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    cls = ray.remote(num_cpus=1, max_concurrency=4, max_restarts=0)(_LoadActor)
    return [cls.options(name=None, scheduling_strategy=PlacementGroupSchedulingStrategy(
        placement_group=pg, placement_group_bundle_index=i)).remote() for i in range(n)]


class RayRecorders:
    """The RecorderPool interface over a RayPool: records come back with each actor's result."""

    def __init__(self, pool: RayPool):
        self.pool = pool

    def start(self, jobs: list[RecordJob]) -> None:
        self.pool.record_jobs = {j.worker: j for j in jobs}

    def finish(self, jobs: list[RecordJob], timeout_s: float) -> list[RecordSummary]:
        done = self.pool.last.get("summaries", {})
        return [done.get(j.worker) or RecordSummary(j.worker) for j in jobs]

    def close(self) -> None:
        pass


def _actor_facts(job: PointJob, out: dict, res: WorkerResult, sends: list[int], start: ClockOffset,
                 end: ClockOffset, got_ns: int) -> dict:
    """One actor's share of the point, its clock and Ray's overhead (driver clock, ns/ms)."""
    n, first, last = sends
    offset = start.offset_ns
    planned = job.arrivals_ns[0] if job.arrivals_ns else job.start_ns  # when its first request was due
    return {
        "worker": job.worker, "requests": n, "first_send_ns": first, "last_send_ns": last,
        "scheduled": len(job.arrivals_ns) if job.arrivals_ns is not None else len(job.requests),
        "start_late_ms": (first - planned) / 1e6 if n else None,
        "dispatch_margin_ms": (job.start_ns - (out["entered_ns"] + offset)) / 1e6,
        "parse_ms": (out["done_ns"] - out["loaded_ns"]) / 1e6,
        "ship_ms": (got_ns - (out["done_ns"] + offset)) / 1e6,
        "cpu_frac": res.cpu_s / res.wall_s if res.wall_s > 0 else None,
        "lag": res.lag_us, "threads": res.threads,
        # applied: the start offset; bounded by its uncertainty plus how far the clocks moved by the end
        "clock": {"start": start.as_dict(), "end": end.as_dict(), "offset_ns": offset,
                  "uncertainty_ns": start.uncertainty_ns + abs(end.offset_ns - start.offset_ns),
                  "drift_ppm": drift_ppm(start, end)},
    }
