"""Per-request samples of one sweep point, and reading a run folder for the reports.

`point_samples` is the one place the report and `compare` turn requests.parquet/chunks.parquet
rows into metric samples. Every formula comes from `profiler.metrics`, and the request masks are
the ones `profiler.summary.summarize_point` uses, so a statistic of these samples equals the
points.csv column of the same name (e.g. p99 of `ttft` × 1000 == `ttft_p99_ms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiler import metrics as m
from profiler import runfolder as rf

# Metrics measured once per request (seconds), as in points.csv.
REQUEST_METRICS = ("ttft", "itl_token", "tpot", "e2e")
# Per-chunk metric: gaps between content chunks, grouped by request.
CHUNK_METRICS = ("itl",)
LATENCY_METRICS = REQUEST_METRICS + CHUNK_METRICS
STATS = ("mean", "p50", "p90", "p95", "p99", "p999")
THROUGHPUT_METRICS = ("output_tok_per_s",)


@dataclass
class PointSamples:
    """Samples of one point. Per-request arrays share one order (requests in the steady window)."""

    point: int
    mode: str
    load: float
    per_request: dict[str, np.ndarray] = field(default_factory=dict)  # seconds, NaN = undefined
    itl_values: np.ndarray = field(default_factory=lambda: np.empty(0))  # gaps (s), grouped by request
    itl_group: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # group index per gap
    itl_groups: int = 0
    out_tokens: np.ndarray = field(default_factory=lambda: np.empty(0))  # per window request
    arrival_gap_s: np.ndarray = field(default_factory=lambda: np.empty(0))  # per window request

    @property
    def n(self) -> int:
        return len(self.out_tokens)


def point_samples(facts: dict, req: pd.DataFrame, chunks: pd.DataFrame, warmup_frac: float) -> PointSamples:
    """Samples of one point from its own requests/chunks rows (pure).

    Request-level metrics keep the successful requests sent inside the steady window (as the
    summary does); ITL keeps the chunk gaps of every successful request (as the summary does).
    """
    ps = PointSamples(point=int(facts["point"]), mode=str(facts.get("mode", "")), load=float(facts.get("load", math.nan)))
    if not len(req):
        ps.per_request = {k: np.empty(0) for k in REQUEST_METRICS}
        return ps
    send = req["send_ns"].to_numpy(np.int64)
    end = req["end_ns"].to_numpy(np.int64)
    ok = req["error"].astype(str).to_numpy() == ""
    per = m.per_request(req)
    out_tok = per["out_tokens"]
    values = {k: per[k] for k in ("ttft", "itl_token", "tpot", "e2e")}
    start_ns, stop_ns, _ = m.steady_window(send, end, warmup_frac)
    keep = ok & (send >= start_ns) & (send <= stop_ns)
    order = np.argsort(send[keep], kind="stable")
    ps.per_request = {k: np.asarray(v, float)[keep][order] for k, v in values.items()}
    ps.out_tokens = np.asarray(out_tok, float)[keep][order]
    # Gap to the previous request sent (any outcome): the open-loop arrival process.
    all_send = np.sort(send)
    prev = np.searchsorted(all_send, send[keep][order], side="left") - 1
    gaps = np.where(prev >= 0, (send[keep][order] - all_send[np.maximum(prev, 0)]) / 1e9, np.nan)
    ps.arrival_gap_s = gaps

    rid = req["request"].to_numpy(np.int64)
    ok_ids = np.unique(rid[ok])
    if len(chunks) and ok_ids.size:
        ch = chunks[chunks["request"].isin(set(ok_ids.tolist()))]
        creq = ch["request"].to_numpy(np.int64)
        t = ch["t_ns"].to_numpy(np.int64)
        o = np.lexsort((t, creq))
        creq, t = creq[o], t[o]
        same = creq[1:] == creq[:-1]
        gaps_s = m.chunk_gaps(creq, t)  # the summary's formula; same sort order as `same`
        ps.itl_values = gaps_s
        ps.itl_group = np.searchsorted(ok_ids, creq[1:][same])
        ps.itl_groups = int(ok_ids.size)
    return ps


@dataclass
class Run:
    """A run folder read for reporting."""

    path: Path
    manifest: dict
    facts: list[dict]
    points: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)


def load_run(run_dir: str | Path) -> Run:
    """manifest + points.jsonl + points.csv (recomputed when missing). ValueError when not a run folder."""
    path = Path(run_dir)
    if not (path / rf.MANIFEST).is_file():
        raise ValueError(f"{path} is not a run folder (no {rf.MANIFEST})")
    manifest = rf.read_json(path / rf.MANIFEST)
    facts = rf.read_point_facts(path)
    if (path / rf.POINTS_CSV).is_file() and (path / rf.POINTS_CSV).stat().st_size:
        points = pd.read_csv(path / rf.POINTS_CSV)
    else:
        from profiler.points import summarize_run

        points = summarize_run(path)
    return Run(path=path, manifest=manifest, facts=facts, points=points)


def run_samples(run: Run) -> dict[int, PointSamples]:
    """PointSamples of every point of a run, keyed by point index."""
    req = rf.read_table(run.path, rf.REQUESTS)
    chunks = rf.read_content_chunks(run.path)
    warmup = float((run.manifest.get("spec") or {}).get("warmup_frac", 0.1))
    out = {}
    for f in run.facts:
        p = int(f["point"])
        r = req[req["point"] == p] if len(req) else req
        c = chunks[chunks["point"] == p] if len(chunks) else chunks
        out[p] = point_samples(f, r, c, warmup)
    return out
