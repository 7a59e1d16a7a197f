"""A synthetic run folder for the report and compare tests, written with `profiler.runfolder`
(no mock server needed). Latencies come from known distributions, so tests can predict them.

`build_run(...)` is imported by the other report/compare tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from backends.records import RequestRecord
from profiler import runfolder as rf
from profiler.points import summarize_run

MS = 1_000_000


def _requests(point: int, load: int, n: int, t0: int, rng: np.random.Generator, ttft_ms: float,
              itl_ms: float, out_tokens: int, prompt: int, mode: str) -> tuple[list[RequestRecord], list, int]:
    """Closed loop: `load` slots each send their next request when the previous ends.
    Open loop (mode "rate"): Poisson arrivals at `load` req/s, no queueing."""
    recs: list[RequestRecord] = []
    chunks: list[tuple[int, int, int, int]] = []
    slots = [t0 + i * 100_000 for i in range(max(1, int(load)))] if mode == "concurrency" else []
    next_arrival = t0
    for i in range(n):
        if mode == "concurrency":
            k = int(np.argmin(slots))
            send = slots[k]
        else:
            next_arrival += int(rng.exponential(1.0 / load) * 1e9)
            send = next_arrival
        ttft = int(rng.lognormal(math.log(ttft_ms), 0.25) * MS)
        gaps = (rng.gamma(16.0, itl_ms / 16.0, size=out_tokens - 1) * MS).astype(np.int64)
        times = send + ttft + np.concatenate([[0], np.cumsum(gaps)])
        end = int(times[-1]) + 50_000
        chunks.extend((point, i, int(t), -1) for t in times)
        recs.append(RequestRecord(
            point=point, request=i, worker=0, scheduled_ns=send, send_ns=send, headers_ns=send + 200_000,
            first_event_ns=int(times[0]), first_content_ns=int(times[0]), last_content_ns=int(times[-1]),
            end_ns=end, status=200, error="", error_detail="", input_tokens=prompt, input_exact=True,
            max_tokens=out_tokens, usage_prompt_tokens=prompt, usage_completion_tokens=out_tokens,
            client_output_tokens=-1, n_events=out_tokens + 2, n_content_chunks=out_tokens, bursts=0,
            response_id=f"r{point}-{i}", output_chars=out_tokens * 5))
        if mode == "concurrency":
            slots[k] = end + 100_000
    last = max(r.end_ns for r in recs)
    return recs, chunks, last


def build_run(out: Path, *, loads=(1, 2, 4, 8), mode: str = "concurrency", n: int = 40, seed: int = 0,
              ttft_ms=lambda load: 20.0 + 5.0 * load, itl_ms=lambda load: 8.0 + 0.5 * load, out_tokens: int = 16,
              prompt: int = 128, model: str = "mock-llm", slos: dict | None = None, telemetry: bool = True,
              pricing: dict | None = None, untrusted: tuple[int, ...] = (2,), name: str = "run") -> Path:
    """Write a complete run folder (manifest, points.jsonl, requests/chunks/telemetry parquet,
    points.csv) under out/name and return its path."""
    run_dir = Path(out) / name
    run_dir.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(seed)
    slos = {"ttft_p99": 0.045} if slos is None else slos
    manifest = {"command": ["inferprof", "sweep", "--concurrency", ",".join(str(x) for x in loads)],
                "endpoint": {"url": "http://127.0.0.1:9", "backend": "openai", "api": "chat", "model": model},
                "spec": {"mode": mode, "loads": list(loads), "requests": n, "warmup_frac": 0.1, "seed": seed},
                "slos": slos, "server": {"kind": "synthetic"},
                "gpus": [{"name": "Synthetic GPU 80GB", "index": 0}] if telemetry else []}
    if pricing:
        manifest["pricing"] = pricing
    rf.start_manifest(run_dir, **manifest)
    req_tables, chunk_tables, tel_rows = [], [], []
    t = 1_000_000_000_000 + seed * 1_000_000
    energy = 0.0
    for p, load in enumerate(loads):
        start = t
        recs, ch, end = _requests(p, load, n, start, rng, ttft_ms(load), itl_ms(load), out_tokens, prompt, mode)
        req_tables.append(rf.records_table(recs))
        cp, cr, ct, ck = (list(x) for x in zip(*ch, strict=True))
        chunk_tables.append(rf.chunks_table(cp, cr, ct, ck))
        if telemetry:
            for ts in range(start - 200 * MS, end + 200 * MS, 50 * MS):
                busy = start <= ts <= end
                power = (100.0 + 40.0 * load if busy else 60.0) + rng.normal(0, 3)
                energy += power * 0.05
                tel_rows += [(ts, "nvml", "0", "power_w", power), (ts, "nvml", "0", "energy_j", energy),
                             (ts, "nvml", "0", "gpu_util", min(1.0, 0.2 * load) if busy else 0.0),
                             (ts, "mock", "", "kv_cache_usage", min(1.0, 0.05 * load) if busy else 0.0)]
        client = {"cpu_frac_max_worker": 0.95 if p in untrusted else 0.1, "lag_p99_ms": 0.2}
        rf.append_point_facts(run_dir, {"point": p, "mode": mode, "load": load, "workers": 1, "start_ns": start,
                                        "end_ns": end, "stop_reason": "requests", "client": client})
        t = end + 500 * MS
    rf.write_table(run_dir / rf.REQUESTS, req_tables)
    rf.write_table(run_dir / rf.CHUNKS, chunk_tables)
    if telemetry:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(zip(*tel_rows, strict=True))
        table = pa.table({"t_ns": pa.array(cols[0], pa.int64()), "source": list(cols[1]), "gpu": list(cols[2]),
                          "metric": list(cols[3]), "value": pa.array(cols[4], pa.float64())})
        pq.write_table(table, run_dir / rf.TELEMETRY)
    rf.write_points_csv(run_dir, summarize_run(run_dir))
    return run_dir


PRICING = {"gpu": "h100-sxm", "provider": "test-cloud", "pricing": "on_demand", "usd_per_gpu_hour": 2.5,
           "energy_usd_per_kwh": None, "pue": 1.0, "source": "test", "as_of": "2026-01-01"}


def test_fixture_run_folder_summarizes(tmp_path):
    run = build_run(tmp_path, pricing=PRICING)
    points = pd.read_csv(run / rf.POINTS_CSV)
    assert list(points["load"]) == [1, 2, 4, 8]
    assert (points["ok"] == 40).all()
    assert list(points["trusted"]) == [True, True, False, True]
    # the TTFT median follows the synthetic distribution's median (20 + 5 × load ms)
    assert np.allclose(points["ttft_p50_ms"], [25, 30, 40, 60], rtol=0.15)


def test_fixture_without_telemetry_or_slo(tmp_path):
    run = build_run(tmp_path, telemetry=False, slos={})
    points = pd.read_csv(run / rf.POINTS_CSV)
    assert len(points) == 4
    assert not (run / rf.TELEMETRY).exists()
