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

import numpy as np

from profiler import metrics as m

# requests.parquet columns the view keeps as arrays (besides the times it derives from).
REQUEST_ARRAYS = ("max_tokens", "input_tokens", "usage_prompt_tokens", "usage_completion_tokens",
                  "client_output_tokens", "n_content_chunks", "bursts")


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
    per: Mapping[str, np.ndarray]  # out_tokens, ttft, e2e, itl_token, tpot, itl (longest chunk gap), s
    prompt_tokens: np.ndarray  # usage.prompt_tokens when reported, else the tokens asked for
    start_ns: int  # the steady window
    stop_ns: int
    steady: bool
    chunk_request: np.ndarray  # content chunks of successful requests, sorted by (request, time)
    chunk_t_ns: np.ndarray
    chunk_tokens: np.ndarray  # the server's count, else the request's tokens spread over its chunks
    gaps_s: np.ndarray  # chunk gaps of successful requests (the per-chunk ITL), same order
    gap_request: np.ndarray  # the request id of each gap

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

    def chunks_of(self, requests_mask: np.ndarray) -> np.ndarray:
        """Chunk mask: the chunks of the requests selected by a per-request mask."""
        return m.lookup(self.request, np.asarray(requests_mask, bool), self.chunk_request, False)

    def tokens_in_window(self, chunk_mask: np.ndarray | None = None) -> float:
        t, tok = self.chunk_t_ns, self.chunk_tokens
        if chunk_mask is not None:
            t, tok = t[chunk_mask], tok[chunk_mask]
        return m.tokens_in_window(t, tok, self.start_ns, self.stop_ns)

    @classmethod
    def build(cls, facts: dict, requests, chunks, warmup_frac: float) -> PointView:
        def col(frame, name, dtype):
            return np.asarray(frame[name], dtype=dtype) if len(frame) else np.empty(0, dtype)

        rid = col(requests, "request", np.int64)
        error = col(requests, "error", object).astype(str) if rid.size else np.empty(0, dtype=str)
        send, end = col(requests, "send_ns", np.int64), col(requests, "end_ns", np.int64)
        cols = {c: col(requests, c, np.int64) for c in REQUEST_ARRAYS}
        per = m.per_request(requests) if rid.size else {k: np.empty(0) for k in
                                                       ("out_tokens", "ttft", "e2e", "itl_token", "tpot")}
        start_ns, stop_ns, steady = m.steady_window(send, end, warmup_frac)
        creq, ct, ctok = _ok_chunks(chunks, rid[error == ""])
        gaps, gap_req = m.sorted_chunk_gaps(creq, ct)
        per = dict(per, itl=m.max_gap_per_request(rid, gap_req, gaps))
        usage_prompt = cols["usage_prompt_tokens"]
        return cls(
            point=int(facts["point"]), mode=str(facts.get("mode", "")), load=float(facts.get("load", math.nan)),
            request=rid, error=error, send_ns=send, end_ns=end, scheduled_ns=col(requests, "scheduled_ns", np.int64),
            cols=cols, per=per, prompt_tokens=np.where(usage_prompt >= 0, usage_prompt, cols["input_tokens"]),
            start_ns=start_ns, stop_ns=stop_ns, steady=steady, chunk_request=creq, chunk_t_ns=ct,
            chunk_tokens=m.chunk_token_estimates(creq, ctok, rid, per["out_tokens"], cols["n_content_chunks"]),
            gaps_s=gaps, gap_request=gap_req)


def _ok_chunks(chunks, ok_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(request, t_ns, tokens) of the content chunks of successful requests, sorted by (request, time)."""
    if not len(chunks) or not ok_ids.size or not len(chunks["request"]):
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    creq = np.asarray(chunks["request"], dtype=np.int64)
    t = np.asarray(chunks["t_ns"], dtype=np.int64)
    tok = np.asarray(chunks["tokens"], dtype=np.int64)
    keep = m.lookup(ok_ids, np.ones(ok_ids.size, bool), creq, False)
    creq, t, tok = creq[keep], t[keep], tok[keep]
    if _sorted(creq, t):  # the appended layout stores chunks sorted: skip the sort
        return creq, t, tok
    order = np.lexsort((t, creq))
    return creq[order], t[order], tok[order]


def _sorted(creq: np.ndarray, t: np.ndarray) -> bool:
    d_req = np.diff(creq)
    return bool(np.all((d_req > 0) | ((d_req == 0) & (np.diff(t) >= 0))))
