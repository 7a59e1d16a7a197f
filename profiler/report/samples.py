"""Per-request samples of one sweep point, and reading a run folder for the reports.

`samples_of(view)` projects the same `PointView` that points.csv is computed from, so a
statistic of these samples equals the points.csv column of the same name (e.g. p99 of `ttft` ×
1000 == `ttft_p99_ms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profiler.pointview import PointView
from profiler.runread import Run, point_rows

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

    @property
    def n(self) -> int:
        return len(self.out_tokens)


def point_samples(facts: dict, req: pd.DataFrame, chunks: pd.DataFrame, warmup_frac: float) -> PointSamples:
    """Samples of one point from its own requests/chunks rows (pure)."""
    return samples_of(PointView.build(facts, req, chunks, warmup_frac))


def samples_of(v: PointView) -> PointSamples:
    """The view's samples: request-level metrics of the successful requests sent inside the steady
    window, in send order; ITL of the chunk gaps of every successful request (as points.csv)."""
    ps = PointSamples(point=v.point, mode=v.mode, load=v.load)
    keep = v.in_window
    order = np.argsort(v.send_ns[keep], kind="stable")
    ps.per_request = {k: np.asarray(v.per[k], float)[keep][order] for k in REQUEST_METRICS}
    ps.out_tokens = np.asarray(v.per["out_tokens"], float)[keep][order]
    # Gap to the previous request sent (any outcome): the open-loop arrival process.
    all_send = np.sort(v.send_ns)
    sent = v.send_ns[keep][order]
    prev = np.searchsorted(all_send, sent, side="left") - 1
    ps.arrival_gap_s = np.where(prev >= 0, (sent - all_send[np.maximum(prev, 0)]) / 1e9, np.nan)
    ok_ids = np.unique(v.request[v.ok])
    if v.gaps_s.size:
        ps.itl_values = v.gaps_s
        ps.itl_group = np.searchsorted(ok_ids, v.gap_request)
        ps.itl_groups = int(ok_ids.size)
    return ps


def run_samples(run: Run) -> dict[int, PointSamples]:
    """PointSamples of every point of a run, keyed by point index."""
    return {int(f["point"]): point_samples(f, r, c, run.warmup_frac) for f, r, c in point_rows(run.path, run.facts)}
