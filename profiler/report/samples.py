"""Per-request samples of one sweep point, and reading a run folder for the reports.

`samples_of(view)` projects the same `PointView` that points.csv is computed from, so a
statistic of these samples equals the points.csv column of the same name (e.g. p99 of `ttft` ×
1000 == `ttft_p99_ms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiler import metrics as m
from profiler import runfolder as rf
from profiler.pointview import PointView
from profiler.runread import Run, point_rows

# The report's distributions draw at most this many requests of a point (a seeded subset).
REPORT_SAMPLE_REQUESTS = 50_000
# compare's bootstrap (and its choice) subsamples larger points: requests, and chunk gaps by whole requests
MAX_BOOTSTRAP_REQUESTS = 2000
MAX_BOOTSTRAP_GAPS = 600_000
_READ: dict[tuple, dict] = {}  # run_samples, by run and arguments
# Metrics measured once per request (seconds), as in points.csv.
REQUEST_METRICS = ("ttft", "itl_token", "tpot", "e2e")
# Per-chunk metric: gaps between content chunks, grouped by request.
CHUNK_METRICS = ("itl",)
LATENCY_METRICS = REQUEST_METRICS + CHUNK_METRICS
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
    subsampled: bool = False  # the arrays hold a seeded random subset of the point's requests

    @property
    def n(self) -> int:
        return len(self.out_tokens)


def point_samples(facts: dict, req: pd.DataFrame, chunks, warmup_frac: float,
                  max_requests: int | None = None, max_gaps: int | None = None) -> PointSamples:
    """Samples of one point from its own requests/chunks rows (pure)."""
    return samples_of(PointView.build(facts, req, chunks, warmup_frac), max_requests, max_gaps)


def samples_of(v: PointView, max_requests: int | None = None, max_gaps: int | None = None) -> PointSamples:
    """The view's samples: request-level metrics of the successful requests sent inside the steady
    window, in send order; ITL of the chunk gaps of every successful request (as points.csv).

    With `max_requests`, a point with more requests than that keeps a seeded random subset of them
    (the same subset for the request metrics and for ITL): a bootstrap's cost grows with the units
    it resamples, and a few thousand requests bound its interval well (`subsampled` says so).
    `max_gaps` bounds the ITL sample the same way, by whole requests, as it holds every chunk gap."""
    ps = PointSamples(point=v.point, mode=v.mode, load=v.load)
    keep = _subset(v.in_window, max_requests, v.point)
    gaps = v.chunks.size - v.chunks.run_len.size
    ps.subsampled = bool(keep.sum() < v.in_window.sum()) or max_gaps is not None and gaps > max_gaps
    order = np.argsort(v.send_ns[keep], kind="stable")
    ps.per_request = {k: np.asarray(v.per[k], float)[keep][order] for k in REQUEST_METRICS}
    ps.out_tokens = np.asarray(v.per["out_tokens"], float)[keep][order]
    # Gap to the previous request sent (any outcome): the open-loop arrival process.
    all_send = np.sort(v.send_ns)
    sent = v.send_ns[keep][order]
    prev = np.searchsorted(all_send, sent, side="left") - 1
    ps.arrival_gap_s = np.where(prev >= 0, (sent - all_send[np.maximum(prev, 0)]) / 1e9, np.nan)
    itl_ok = _subset(v.ok, _itl_requests(v, max_requests, max_gaps), v.point)
    ok_ids = np.unique(v.request[itl_ok])
    if v.chunks.size > v.chunks.run_len.size:  # some request has two chunks or more: there are gaps
        mine = v.chunks.runs_of(v.request, itl_ok) if ps.subsampled else None
        gaps, gap_req = (v.gaps_s, v.gap_request) if mine is None else _gaps_of_runs(v, mine)
        ps.itl_values = gaps
        ps.itl_group = np.searchsorted(ok_ids, gap_req)
        ps.itl_groups = int(ok_ids.size)
    return ps


def _itl_requests(v: PointView, max_requests: int | None, max_gaps: int | None) -> int | None:
    """How many successful requests the ITL sample may hold."""
    gaps = v.chunks.size - v.chunks.run_len.size
    if max_gaps is None or gaps <= max_gaps:
        return max_requests
    per_request = gaps / max(1, int(v.ok.sum()))
    by_gaps = max(1, int(max_gaps / per_request))
    return by_gaps if max_requests is None else min(max_requests, by_gaps)


def _subset(mask: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """`mask`, or a seeded random `limit` of its True entries when it has more."""
    if limit is None or mask.sum() <= limit:
        return mask
    chosen = np.random.default_rng(seed).choice(np.flatnonzero(mask), size=limit, replace=False)
    out = np.zeros_like(mask)
    out[chosen] = True
    return out


def _gaps_of_runs(v: PointView, runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chunk gaps (and their request ids) of the selected runs only."""
    c = v.chunks
    per_chunk = np.repeat(runs, c.run_len)
    starts = np.r_[0, np.cumsum(c.run_len[runs])[:-1]]
    t = c.t_ns[per_chunk]
    return m.run_gaps(t, starts), np.repeat(c.run_request[runs], c.run_len[runs] - 1)


def run_samples(run: Run, max_requests: int | None = None, max_gaps: int | None = None) -> dict[int, PointSamples]:
    """PointSamples of every point of a run, keyed by point index. Kept for the process: `compare`
    bootstraps the samples and its choice weighs them again, and reading a run of a million
    requests costs seconds (the samples are small: at most `max_requests` a point)."""
    facts_file = Path(run.path) / rf.POINTS_RAW
    stamp = facts_file.stat().st_mtime_ns if facts_file.exists() else 0  # a resumed run is read anew
    key = (str(Path(run.path).resolve()), stamp, run.warmup_frac, max_requests, max_gaps)
    if key not in _READ:
        _READ[key] = {int(f["point"]): point_samples(f, r, c, run.warmup_frac, max_requests, max_gaps)
                      for f, r, c in point_rows(run.path, run.facts)}
    return _READ[key]
