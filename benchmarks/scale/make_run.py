"""Write a valid run folder of N requests with T output tokens each, through inferprof's own
writer (`profiler.runfolder.RunWriter`), for the scale figures in benchmarks/scale/README.md.

    python3 benchmarks/scale/make_run.py 1000000 /tmp/run-1m --tokens 256 --points 10

Timings are realistic for a closed loop: point p of P runs round(C·(p+1)/P) streams (a sweep up
to C = `--concurrency`); a request's
TTFT is lognormal around 50 ms, its chunk gaps gamma-distributed around 10 ms with a rare stall,
and a few requests fail. Requests are generated and written in batches, so memory stays flat.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backends.records import REQUEST_COLUMNS, RequestRecord  # noqa: E402
from profiler import runfolder as rf  # noqa: E402

MS = 1_000_000
BATCH = 20_000  # requests per appended file


def _batch(point: int, first: int, n: int, tokens: int, concurrency: int, t0: int,
           rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Requests first..first+n-1 of a point, sent by `concurrency` streams back to back."""
    ttft = rng.lognormal(np.log(50.0), 0.3, n) * MS
    gaps = rng.gamma(16.0, 10.0 / 16.0, (n, tokens - 1)) * MS
    stall = rng.random((n, tokens - 1)) < 1e-4
    gaps[stall] += rng.uniform(2e3, 5e3, int(stall.sum())) * MS
    offsets = np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    e2e = ttft + offsets[:, -1] + 0.05 * MS
    slot = (first + np.arange(n)) // concurrency  # the round each request belongs to
    send = (t0 + slot * 3000 * MS + rng.uniform(0, 100 * MS, n)).astype(np.int64)
    first_ns = send + ttft.astype(np.int64)
    times = first_ns[:, None] + offsets.astype(np.int64)
    failed = rng.random(n) < 0.002
    ids = first + np.arange(n, dtype=np.int64)
    cols = {
        "point": np.full(n, point), "request": ids, "worker": np.zeros(n, np.int64),
        "scheduled_ns": send, "send_ns": send, "headers_ns": send + MS, "first_event_ns": first_ns,
        "first_content_ns": first_ns, "last_content_ns": times[:, -1], "end_ns": send + e2e.astype(np.int64),
        "status": np.where(failed, 500, 200), "error": np.where(failed, "server_error", ""),
        "error_detail": np.full(n, ""), "input_tokens": np.full(n, 512), "input_exact": np.ones(n, bool),
        "max_tokens": np.full(n, tokens), "usage_prompt_tokens": np.full(n, 512),
        "usage_completion_tokens": np.full(n, tokens), "client_output_tokens": np.full(n, -1),
        "n_events": np.full(n, tokens + 2), "n_content_chunks": np.full(n, tokens), "bursts": np.zeros(n, np.int64),
        "response_id": np.char.add("cmpl-", ids.astype(str)), "output_chars": np.full(n, 4 * tokens),
        "usage_cached_tokens": np.full(n, -1),
    }
    # columns added to RequestRecord later (with defaults) take their default
    defaults = {f.name: f.default for f in dataclasses.fields(RequestRecord)}
    requests = pa.table({c: cols[c] if c in cols else np.full(n, defaults[c]) for c in REQUEST_COLUMNS})
    chunks = pa.table({"point": np.full(n * tokens, point, np.int64), "request": np.repeat(ids, tokens),
                       "t_ns": times.ravel(), "tokens": np.full(n * tokens, -1, np.int64),
                       "content": np.ones(n * tokens, bool)})
    return requests, chunks


def make_run(n: int, out: Path, tokens: int = 256, points: int = 1, concurrency: int = 256, seed: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(seed)
    rf.start_manifest(out, command=sys.argv, endpoint={"url": "synthetic", "backend": "openai", "model": "synthetic"},
                      spec={"mode": "concurrency", "warmup_frac": 0.1}, slos={"ttft_p99": 0.5, "itl_p99": 0.05})
    writer = rf.RunWriter(out)
    per_point = -(-n // points)
    t0 = 10**12
    for p in range(points):
        count = min(per_point, n - p * per_point)
        load = max(1, round(concurrency * (p + 1) / points))  # a sweep up to --concurrency
        start = t0
        for first in range(0, count, BATCH):
            req, ch = _batch(p, first, min(BATCH, count - first), tokens, load, start, rng)
            writer.add_records(p, req, ch)
        end = start + (count // load + 1) * 3000 * MS + 10_000 * MS
        rf.append_point_facts(out, {"point": p, "mode": "concurrency", "load": load, "workers": 1,
                                    "start_ns": start, "stop_ns": 0, "end_ns": end,
                                    "client": {"cpu_frac_max_worker": 0.3, "lag_p99_ms": 0.1}})
        t0 = end + 1000 * MS
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("requests", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--points", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    path = make_run(a.requests, a.out, a.tokens, a.points, a.concurrency, a.seed)
    print(json.dumps({"run_dir": str(path), "requests": a.requests, "tokens": a.tokens, "points": a.points}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
