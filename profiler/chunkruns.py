"""The content chunks of a point's successful requests, held as runs: the chunks of one request
are adjacent and in time order, so per-request sums and maxima are `reduceat` over the runs and
nothing is gathered chunk by chunk. This keeps a point of 25 million chunks to a few passes over
two int64 arrays (benchmarks/scale/README.md).

The formulas are those of `profiler.metrics`: chunk gaps (the per-chunk ITL), each request's
longest gap, and the tokens of the chunks that arrived inside a window (the server's per-chunk
count when it gave one, else the request's tokens spread evenly over its chunks).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from profiler import metrics as m
from profiler.quantiles import SELECT_MIN
from profiler.scratch import scratch

# Whose steps the "chunk-steps" scratch array holds (a weak reference): read-only users of the
# steps (gap statistics, longest gaps) of the same view share one computation.
_STEPS_OF: list = [None]


@dataclass(frozen=True)
class ChunkColumns:
    """Content chunks as read from the appended layout: each request's chunks adjacent and in time
    order, the runs given (request id and chunk count of each) instead of a request id per chunk;
    `tokens` is None when the server never gave a per-chunk count."""

    t_ns: np.ndarray
    tokens: np.ndarray | None
    run_request: np.ndarray
    run_len: np.ndarray

    def __len__(self) -> int:
        return int(self.t_ns.size)


@dataclass(frozen=True)
class ChunkRuns:
    t_ns: np.ndarray  # int64, grouped by request, in time order within a request
    tokens: np.ndarray | None  # the server's per-chunk count (-1 = not said); None if it never said
    run_request: np.ndarray  # the request id of each run
    run_start: np.ndarray  # index of each run's first chunk
    run_len: np.ndarray  # chunks in each run (>= 1)
    est: np.ndarray  # per run: the request's output tokens / its content chunks

    @classmethod
    def empty(cls) -> ChunkRuns:
        e = np.empty(0, np.int64)
        return cls(e, None, e, e, e, np.empty(0))

    @classmethod
    def build(cls, chunks, ok_ids: np.ndarray, request_ids: np.ndarray, out_tokens: np.ndarray,
              content_chunks: np.ndarray) -> ChunkRuns:
        """Runs of the chunks of the requests in `ok_ids`; per-request arrays give the estimates."""
        if not len(chunks) or not ok_ids.size:
            return cls.empty()
        if isinstance(chunks, ChunkColumns):
            t, tok, run_req, run_len = chunks.t_ns, chunks.tokens, chunks.run_request, chunks.run_len
            start = np.r_[0, np.cumsum(run_len)[:-1]].astype(np.int64)
        else:
            t, tok, run_req, run_len, start = runs_of_rows(chunks)
        keep = m.lookup(ok_ids, np.ones(ok_ids.size, bool), run_req, False)
        if not keep.all():
            t, tok = _kept_chunks(t, tok, start, run_len, keep)
            run_req, run_len = run_req[keep], run_len[keep]
            start = np.r_[0, np.cumsum(run_len)[:-1]].astype(np.int64) if run_len.size else run_len
        if not run_len.size:
            return cls.empty()
        with np.errstate(divide="ignore", invalid="ignore"):
            per_req = np.where(content_chunks > 0, out_tokens / np.maximum(content_chunks, 1), 0.0)
        return cls(t_ns=t, tokens=tok if tok is not None and (tok >= 0).any() else None,
                   run_request=run_req, run_start=start,
                   run_len=run_len, est=m.lookup(request_ids, per_req.astype(float), run_req, 0.0))

    @property
    def size(self) -> int:
        return int(self.t_ns.size)

    def _steps_ns(self) -> np.ndarray:
        """Differences of consecutive chunk times (ns), with 0 where one request's last chunk meets
        the next one's first: the chunk gaps in place, plus one placeholder zero per boundary.
        Written into a scratch array (profiler.scratch): use it before the next call."""
        steps = scratch("chunk-steps", max(0, self.size - 1), np.int64)
        if self.size < 2:
            return steps
        if _STEPS_OF[0] is not None and _STEPS_OF[0]() is self:  # still this view's (an itl SLO asks twice)
            return steps
        np.subtract(self.t_ns[1:], self.t_ns[:-1], out=steps)
        steps[self.run_start[1:] - 1] = 0
        _STEPS_OF[0] = weakref.ref(self)
        return steps

    @cached_property
    def gaps_s(self) -> np.ndarray:
        """Gaps between consecutive chunks of each request (s), grouped by run (m.run_gaps)."""
        return m.run_gaps(self.t_ns, self.run_start)

    @cached_property
    def gap_request(self) -> np.ndarray:
        """The request id of each gap."""
        return np.repeat(self.run_request, self.run_len - 1)

    def gap_stats(self) -> dict[str, float]:
        """m.stats of the chunk gaps, read off the steps without compacting them (their placeholder
        zeros are dropped by rank, see profiler.quantiles)."""
        boundaries = max(0, self.run_len.size - 1)
        if self.size - 1 - boundaries < SELECT_MIN:
            return m.stats(self.gaps_s)
        return m.stats_ns(self._steps_ns(), zeros_to_drop=boundaries)

    def longest_gap(self, request_ids: np.ndarray) -> np.ndarray:
        """Each request's longest chunk gap (s); NaN for fewer than two content chunks."""
        multi = self.run_len >= 2
        if not multi.any():
            return np.full(np.asarray(request_ids).size, np.nan)
        # From a run's first gap to the next multi-chunk run: its gaps and placeholder zeros only.
        longest = np.maximum.reduceat(self._steps_ns(), self.run_start[multi]) / 1e9  # as m.run_gaps
        return m.lookup(self.run_request[multi], longest, request_ids, np.nan)

    def tokens_in_window(self, start_ns: int, stop_ns: int, run_mask: np.ndarray | None = None) -> float:
        """Tokens of the chunks that arrived within [start_ns, stop_ns] (of the runs in `run_mask`)."""
        if not self.size:
            return 0.0
        if self.tokens is None:
            per_run = self.est * self._count_inside(start_ns, stop_ns)
        else:
            inside = (self.t_ns >= start_ns) & (self.t_ns <= stop_ns)
            given = self.tokens >= 0
            said = np.add.reduceat(np.where(inside & given, self.tokens, 0), self.run_start, dtype=np.int64)
            per_run = said + self.est * np.add.reduceat(inside & ~given, self.run_start, dtype=np.int64)
        return float(per_run.sum() if run_mask is None else per_run[run_mask].sum())

    def _count_inside(self, start_ns: int, stop_ns: int) -> np.ndarray:
        """Chunks of each run inside [start_ns, stop_ns]. A run lies wholly inside or outside unless
        it straddles an edge (a few per window edge), so only those are counted chunk by chunk."""
        first, last = self.t_ns[self.run_start], self.t_ns[self.run_start + self.run_len - 1]
        count = np.where((first >= start_ns) & (last <= stop_ns), self.run_len, 0)
        edge = np.flatnonzero(~((first >= start_ns) & (last <= stop_ns)) & (last >= start_ns) & (first <= stop_ns))
        for r in edge.tolist():
            t = self.t_ns[self.run_start[r]:self.run_start[r] + self.run_len[r]]
            count[r] = int(np.searchsorted(t, stop_ns, side="right") - np.searchsorted(t, start_ns, side="left"))
        return count

    def runs_of(self, request_ids: np.ndarray, request_mask: np.ndarray) -> np.ndarray:
        """Run mask: the runs of the requests selected by a per-request mask."""
        return m.lookup(request_ids, np.asarray(request_mask, bool), self.run_request, False)


def _kept_chunks(t: np.ndarray, tok: np.ndarray | None, start: np.ndarray, run_len: np.ndarray,
                 keep: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The chunks of the kept runs, in order, in a scratch array (profiler.scratch): at 25 M
    chunks a point, a fresh array's page faults cost about 0.5 s."""
    n = int(run_len[keep].sum())
    out_t = scratch("kept-chunk-times", n, t.dtype)
    out_tok = None if tok is None else np.empty(n, tok.dtype)
    copy_kept(t, tok, start, run_len, keep, out_t, out_tok)
    return out_t, out_tok


def copy_kept(t: np.ndarray, tok: np.ndarray | None, start: np.ndarray, run_len: np.ndarray, keep: np.ndarray,
              out_t: np.ndarray, out_tok: np.ndarray | None) -> int:
    """Copy the chunks of the kept runs, in order, to the front of `out_t` (and `out_tok`); returns
    how many. The dropped runs (failed requests) are few, so the kept stretches between them are
    copied whole instead of gathering chunk by chunk through a per-chunk mask."""
    drop = np.flatnonzero(~keep)
    if drop.size > 10_000:  # many dropped runs: one masked gather is cheaper than many copies
        mask = np.repeat(keep, run_len)
        n = int(mask.sum())
        out_t[:n] = t[mask]
        if out_tok is not None:
            out_tok[:n] = tok[mask]
        return n
    cuts = np.r_[0, np.ravel(np.column_stack((start[drop], start[drop] + run_len[drop]))), t.size]
    pos = 0
    for a, b in zip(cuts[0::2].tolist(), cuts[1::2].tolist(), strict=True):  # the kept stretches
        out_t[pos:pos + b - a] = t[a:b]
        if out_tok is not None:
            out_tok[pos:pos + b - a] = tok[a:b]
        pos += b - a
    return pos


def runs_of_rows(chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t_ns, tokens, run request, run length, run start) from chunk rows in any order."""
    req = np.asarray(chunks["request"], dtype=np.int64)
    t = np.asarray(chunks["t_ns"], dtype=np.int64)
    tok = np.asarray(chunks["tokens"], dtype=np.int64)
    if not m.sorted_by_request_time(req, t):
        order = np.lexsort((t, req))
        req, t, tok = req[order], t[order], tok[order]
    start = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])
    return t, tok, req[start], np.diff(np.r_[start, req.size]), start
