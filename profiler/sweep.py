"""Run a sweep: points in order, each measured by the load generator and written as it finishes."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backends import control
from backends.http_stream import parse_url
from backends.openai import OpenAICodec
from backends.records import ERR_CONNECT, RawStream
from profiler import runfolder as rf
from profiler.loadgen import (
    START_MARGIN_NS,
    PointJob,
    WorkerPool,
    default_workers,
    open_connection,
    split_closed,
    split_open,
)
from profiler.points import summarize_run
from profiler.spec import SweepSpec
from workloads.arrivals import arrival_offsets
from workloads.lengths import parse_length
from workloads.prompts import calibrate_prompt, load_tokenizer
from workloads.requests import RequestSpec, build_requests

DURATION_POOL = 2000  # distinct requests cycled through in --duration mode


class SweepError(Exception):
    """A sweep could not start or continue; the message is one line for the user."""


@dataclass
class Target:
    url: str
    model: str
    api: str = "chat"
    backend: str = "openai"
    api_key_env: str = ""
    tokenizer: str = ""
    extra_manifest: dict = field(default_factory=dict)


def resolve_model(target: Target) -> Target:
    """Check the endpoint speaks the API and serves the model; pick its model when none is given."""
    headers = {}
    if target.api_key_env:
        import os

        key = os.environ.get(target.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
    try:
        models = control.list_models(target.url, headers)
    except control.ControlError as e:
        raise SweepError(str(e)) from None
    if not models:
        raise SweepError(f"{target.url} serves no model")
    if not target.model:
        target.model = models[0]
    elif target.model not in models:
        raise SweepError(f"model {target.model!r} is not served at {target.url}; it serves: {', '.join(models)}")
    return target


def build_workload(spec: SweepSpec, target: Target, n: int, notices: list[str], seed: int) -> list[RequestSpec]:
    """`n` requests for one point. Each point gets its own seed, so its prompts are new to the
    server: a prefix cache (on by default in vLLM) cannot serve a later point's prefill from an
    earlier point's prompts."""
    in_len = parse_length(spec.input_tokens)
    out_len = parse_length(spec.output_tokens)
    tok = load_tokenizer(target.tokenizer) if target.tokenizer else None
    reqs = build_requests(n, in_len, out_len, seed, tokenizer=tok)
    if tok is None and target.backend == "openai":
        count_fn = control.tokenize_counter(target.url, target.model, target.api)
        if count_fn is None:
            notices.append("no local tokenizer and no /tokenize on the server: prompt lengths are approximate "
                           "(one common word per token); the server's usage gives the true count")
        else:
            rng = np.random.default_rng(seed + 7)
            calibrated = []
            for r in reqs:
                try:
                    prompt, count = calibrate_prompt(r.input_tokens, count_fn, rng)
                except control.ControlError as e:
                    raise SweepError(f"server at {target.url} stopped answering while prompts were built: {e}") from None
                calibrated.append(RequestSpec(r.index, prompt, count, r.max_tokens, count == r.input_tokens))
            reqs = calibrated
            exact = sum(r.input_exact for r in reqs)
            notices.append(f"prompt lengths calibrated with the server's /tokenize ({exact} of {len(reqs)} exact)")
    return reqs


def make_codec(target: Target):
    endpoint = parse_url(target.url)
    if target.backend == "openai":
        return OpenAICodec(endpoint, target.model, api=target.api, api_key_env=target.api_key_env)
    from backends import triton

    return triton.make_codec(endpoint, target)


def preflight(codec, requests: list[RequestSpec], timeout_s: float = 60.0) -> dict:
    """Short requests before the sweep, so a wrong endpoint fails fast with its reason.

    Server errors (HTTP 5xx) are retried twice and then tolerated: a failing server is something
    to measure. Anything else (not streaming, refused, 4xx) stops the sweep before it starts.
    """
    from dataclasses import replace

    probe = codec.request_bytes(replace(requests[0], max_tokens=2))
    for _ in range(3):
        conn = open_connection(codec, codec.endpoint, timeout_s)
        raw = RawStream()
        try:
            conn.stream(probe, raw, time.perf_counter_ns() + int(timeout_s * 1e9))
        finally:
            conn.close()
        parsed = codec.parse(raw)
        if not parsed.error or raw.status >= 500:
            if not parsed.error:
                return {"requests": 1, "max_tokens": 2, "usage_prompt_tokens": parsed.usage_prompt_tokens,
                        "usage_completion_tokens": parsed.usage_completion_tokens,
                        "note": "one short request before the first point; not in requests.parquet"}
            continue
        raise SweepError(f"test request to {codec.endpoint.host_header} failed: {parsed.error_detail or parsed.error}")
    return {"requests": 3, "max_tokens": 2, "note": "the server answered HTTP 5xx to all three; sweep goes on"}


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
              pricing=None) -> tuple[Path, pd.DataFrame]:
    """Measure every point of `spec` against `target`; returns (run folder, points table)."""
    notices: list[str] = []
    codec = make_codec(target)
    pre = preflight(codec, build_requests(1, parse_length("8"), parse_length("2"), spec.seed))

    def workload(i: int, load) -> tuple[list[RequestSpec], list[bytes]]:
        n = spec.requests_for(load) if spec.duration_s is None else max(spec.requests or 0, DURATION_POOL)
        reqs = build_workload(spec, target, n, notices, seed=spec.seed + 1009 * i)
        return reqs, [codec.request_bytes(r) for r in reqs]

    first = workload(0, spec.loads[0])
    for note in notices:
        console.print(f"[yellow]note:[/] {note}")
    if callable(telemetry):  # built only once the endpoint is known to work
        telemetry = telemetry()

    run_dir = rf.new_run_dir(out_dir)
    manifest = rf.start_manifest(
        run_dir, command=command or sys.argv,
        endpoint={"url": target.url, "backend": target.backend, "api": target.api, "model": target.model},
        preflight=pre,
        spec=spec.to_dict(), slos=spec.slos, notices=notices, **target.extra_manifest)
    workers = spec.workers or max(default_workers(spec.mode, load) for load in spec.loads)
    metrics_url = target.url.rstrip("/") + "/metrics"
    req_tables: list[pa.Table] = []
    chunk_tables: list[pa.Table] = []
    samples: list = []
    points = pd.DataFrame()
    pool = WorkerPool(workers)
    try:
        if telemetry is not None:
            telemetry.start()
            manifest["gpus"] = telemetry.gpu_info()
        if pricing is not None:  # priced now so points.csv carries cost columns as the sweep goes
            manifest["pricing"] = pricing(manifest.get("gpus") or [])
        rf.write_json(run_dir / rf.MANIFEST, manifest)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=False,
                      refresh_per_second=2,  # the display shares the client's cores: keep it rare
                      disable=not console.is_terminal) as progress:
            for i, load in enumerate(spec.loads):
                label = f"point {i}: {'concurrency' if spec.mode == 'concurrency' else 'rate'} {load:g}"
                total = spec.requests_for(load) if spec.duration_s is None else None
                task = progress.add_task(label, total=total)
                if telemetry is not None:
                    telemetry.sample_now()  # a reading just before the point, for counters
                before = control.scrape(metrics_url)
                live = (lambda done, t=task: progress.update(t, completed=done)) if console.is_terminal else None
                requests, payloads = first if i == 0 else workload(i, load)
                facts, results = _run_point(pool, spec, target, codec, requests, payloads, i, load, workers, live)
                if telemetry is not None:
                    telemetry.sample_now()  # and one just after it
                after = control.scrape(metrics_url)
                hist = _server_ttft_hist(before, after)
                if hist:
                    facts["server_ttft_hist"] = hist
                records = [r for res in results for r in res.records]
                req_tables.append(rf.records_table(records))
                chunk_tables.append(rf.chunks_table(
                    [i] * sum(len(res.chunk_t_ns) for res in results),
                    [x for res in results for x in res.chunk_request],
                    [x for res in results for x in res.chunk_t_ns],
                    [x for res in results for x in res.chunk_tokens],
                    [x for res in results for x in res.chunk_content]))
                if telemetry is not None:
                    samples.extend(telemetry.drain())
                    rf.write_samples(run_dir, samples)
                rf.write_table(run_dir / rf.REQUESTS, req_tables)
                rf.write_table(run_dir / rf.CHUNKS, chunk_tables)
                rf.append_point_facts(run_dir, facts)
                points = summarize_run(run_dir)
                rf.write_points_csv(run_dir, points)
                progress.update(task, completed=len(records), total=len(records))
                if on_point:
                    on_point(points.iloc[-1])
                errs = [res.error for res in results if res.error]
                if errs:
                    raise SweepError(f"load generator failed at point {i}: {errs[0]}")
                if records and all(r.error == ERR_CONNECT for r in records):
                    raise SweepError(f"server at {target.url} stopped answering at point {i}; "
                                     f"{i} finished point(s) kept in {run_dir}")
    finally:
        pool.close()
        if telemetry is not None:
            telemetry.stop()
            manifest["telemetry"] = {"notices": telemetry.notices, "errors": dict(telemetry.errors)}
            samples.extend(telemetry.drain())
            rf.write_samples(run_dir, samples)
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rf.write_json(run_dir / rf.MANIFEST, manifest)
    return run_dir, points


def _run_point(pool: WorkerPool, spec: SweepSpec, target: Target, codec, requests, payloads, point: int,
               load, max_workers: int, on_progress=None):
    n = len(requests)
    k = max(1, min(max_workers, spec.workers or default_workers(spec.mode, load)))
    start_ns = time.perf_counter_ns() + START_MARGIN_NS
    stop_ns = start_ns + int(spec.duration_s * 1e9) if spec.duration_s else 0
    cycle = spec.duration_s is not None
    common = dict(point=point, endpoint=codec.endpoint, codec=codec, total_specs=n, start_ns=start_ns,
                  stop_ns=stop_ns, cycle=cycle, request_timeout_s=spec.request_timeout_s,
                  tokenizer_path=target.tokenizer, transport=spec.transport)
    jobs: list[PointJob] = []
    index_of = {r.index: j for j, r in enumerate(requests)}
    if spec.mode == "concurrency":
        for w, (streams, reqs) in enumerate(split_closed(requests, int(load), k)):
            jobs.append(PointJob(worker=w, requests=reqs, payloads=[payloads[index_of[r.index]] for r in reqs],
                                 streams=streams, **common))
    else:
        n_arr = n if not cycle else max(1, math.ceil(load * spec.duration_s))
        offsets = arrival_offsets(n_arr, float(load), spec.arrival, seed=spec.seed + point)
        sched = [start_ns + int(o * 1e9) for o in offsets]
        reqs_all = [requests[j % n] for j in range(n_arr)]
        if cycle and n_arr > n:  # give cycled requests unique ids, as the closed loop does
            reqs_all = [RequestSpec(r.index + (j // n) * n, r.prompt, r.input_tokens, r.max_tokens, r.input_exact)
                        for j, r in enumerate(reqs_all)]
        for w, (reqs, arr) in enumerate(split_open(reqs_all, sched, k)):
            jobs.append(PointJob(worker=w, requests=reqs, payloads=[payloads[r.index % n] for r in reqs],
                                 arrivals_ns=arr, max_in_flight=spec.max_concurrency or 4096, **common))
            jobs[-1].total_specs = n_arr if cycle else n
    expected = (spec.duration_s or 0) + spec.request_timeout_s + 60
    if spec.mode == "rate":
        expected += n / float(load)
    results = pool.run(jobs, timeout_s=expected + 60, on_progress=on_progress)
    lags = [x for res in results for x in res.lag_us]
    cpu = [res.cpu_s / res.wall_s for res in results if res.wall_s > 0]
    ends = [r.end_ns for res in results for r in res.records]
    facts = {
        "point": point, "mode": spec.mode, "load": load, "workers": len(jobs), "start_ns": start_ns,
        "stop_ns": stop_ns, "end_ns": max(ends) if ends else time.perf_counter_ns(),
        "client": {
            "cpu_frac_max_worker": max(cpu) if cpu else math.nan,
            "cpu_frac_total": sum(cpu),
            "lag_p99_ms": float(np.percentile(lags, 99) / 1000) if lags else math.nan,
            "lag_max_ms": float(max(lags) / 1000) if lags else math.nan,
            "lag_samples": len(lags),
            "threads": sum(res.threads for res in results),
        },
    }
    return facts, results
