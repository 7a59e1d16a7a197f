"""One view of a sweep point: the masks, the steady window and the per-request and per-chunk
arrays that every figure of the point is computed from.

`PointView.build(facts, requests, chunks, warmup)` derives them once (with the formulas of
`profiler.metrics`); the points.csv row (`profiler.summary`) and the report's samples
(`profiler.report.samples`) are both projections of the same view, so a report's statistic equals
the points.csv column of the same name by construction.

`requests` and `chunks` are this point's rows of requests.parquet and of the content-carrying
chunks (a DataFrame or any mapping of column name → array).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from profiler import metrics as m
from profiler.chunkruns import ChunkRuns
from profiler.steady import warmup_requests

# requests.parquet columns the view keeps as arrays (besides the times it derives from).
REQUEST_ARRAYS = ("max_tokens", "input_tokens", "usage_prompt_tokens", "usage_completion_tokens",
                  "client_output_tokens", "n_content_chunks", "bursts", "status")


@dataclass(frozen=True)
class PointView:
    """Arrays are per request (in the requests' row order) unless named chunk_/gap_."""

    point: int
    mode: str
    load: float
    request: np.ndarray  # request ids
    error: np.ndarray  # error class, "" when the request succeeded
    send_ns: np.ndarray
    end_ns: np.ndarray
    scheduled_ns: np.ndarray
    cols: Mapping[str, np.ndarray]  # REQUEST_ARRAYS
    per: Mapping[str, np.ndarray]  # out_tokens, ttft, e2e, itl_token, tpot (s)
    prompt_tokens: np.ndarray  # usage.prompt_tokens when reported, else the tokens asked for
    start_ns: int  # the steady window
    stop_ns: int
    steady: bool
    chunks: ChunkRuns  # content chunks of successful requests, one run per request

    @property
    def gaps_s(self) -> np.ndarray:
        """Chunk gaps of successful requests (the per-chunk ITL), grouped by request."""
        return self.chunks.gaps_s

    @cached_property
    def longest_gap_s(self) -> np.ndarray:
        """Each request's longest chunk gap (s): its value for an `itl` SLO (NaN: under two chunks)."""
        return self.chunks.longest_gap(self.request)

    @property
    def gap_request(self) -> np.ndarray:
        return self.chunks.gap_request

    @property
    def n(self) -> int:
        return int(self.request.size)

    @property
    def ok(self) -> np.ndarray:
        return self.error == ""

    @property
    def cancelled(self) -> np.ndarray:
        return self.error == "cancelled"

    @property
    def failed(self) -> np.ndarray:
        return ~self.ok & ~self.cancelled

    @property
    def window_s(self) -> float:
        return (self.stop_ns - self.start_ns) / 1e9

    @property
    def sent_in_window(self) -> np.ndarray:
        return (self.send_ns >= self.start_ns) & (self.send_ns <= self.stop_ns)

    @property
    def in_window(self) -> np.ndarray:
        """Successful requests sent inside the steady window: the latency statistics' sample."""
        return self.ok & self.sent_in_window

    @property
    def ended_in_window(self) -> np.ndarray:
        return self.ok & (self.end_ns >= self.start_ns) & (self.end_ns <= self.stop_ns)

    def tokens_in_window(self, requests_mask: np.ndarray | None = None) -> float:
        """Tokens of the chunks that arrived inside the steady window (of the requests in the mask)."""
        runs = None if requests_mask is None else self.chunks.runs_of(self.request, requests_mask)
        return self.chunks.tokens_in_window(self.start_ns, self.stop_ns, runs)

    @classmethod
    def build(cls, facts: dict, requests, chunks, warmup_frac: float | None) -> PointView:
        """`warmup_frac` None: the warm-up is found from the data (MSER-5 on TTFT)."""
        def col(frame, name, dtype):
            return np.asarray(frame[name], dtype=dtype) if len(frame) else np.empty(0, dtype)

        rid = col(requests, "request", np.int64)
        error = col(requests, "error", object).astype(str) if rid.size else np.empty(0, dtype=str)
        send, end = col(requests, "send_ns", np.int64), col(requests, "end_ns", np.int64)
        cols = {c: col(requests, c, np.int64) for c in REQUEST_ARRAYS}
        per = m.per_request(requests) if rid.size else {k: np.empty(0) for k in
                                                       ("out_tokens", "ttft", "e2e", "itl_token", "tpot")}
        start_ns, stop_ns, steady = point_window(send, end, per["ttft"], warmup_frac)
        runs = ChunkRuns.build(chunks, rid[error == ""], rid, per["out_tokens"], cols["n_content_chunks"])
        usage_prompt = cols["usage_prompt_tokens"]
        return cls(
            point=int(facts["point"]), mode=str(facts.get("mode", "")), load=float(facts.get("load", math.nan)),
            request=rid, error=error, send_ns=send, end_ns=end, scheduled_ns=col(requests, "scheduled_ns", np.int64),
            cols=cols, per=per, prompt_tokens=np.where(usage_prompt >= 0, usage_prompt, cols["input_tokens"]),
            start_ns=start_ns, stop_ns=stop_ns, steady=steady, chunks=runs)


def point_window(send, end, ttft, warmup_frac: float | None) -> tuple[int, int, bool]:
    """A point's steady window (metrics.steady_window): the first `warmup_frac` of its requests
    left out, or with `warmup_frac` None the warm-up MSER-5 finds on TTFT (profiler.steady)."""
    skip = warmup_requests(send, ttft) if warmup_frac is None else None
    return m.steady_window(send, end, warmup_frac or 0.0, skip)
