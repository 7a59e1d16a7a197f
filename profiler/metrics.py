"""Every latency and throughput formula, as pure functions over plain arrays.

These are the definitions the README quotes; change one here and there together.
Times are int64 nanoseconds from `time.perf_counter_ns()`; results are seconds unless named.

- TTFT = first_content_ns − send_ns: the first event carrying generated content (text, reasoning
  or a tool call). Role-only preludes, empty deltas, usage-only events and keep-alives don't count.
- ITL (per chunk) = gaps between consecutive content events of one request: the raw chunk-gap
  distribution (several tokens may share one chunk).
- ITL (per token), per request = (last_content_ns − first_content_ns) / (output_tokens − 1).
- TPOT, per request = (E2E − TTFT) / (output_tokens − 1), with E2E = end_ns − send_ns (the
  response fully received). Requests with one output token have no ITL/TPOT.
- Output tokens = server `usage.completion_tokens` when reported, else the client tokenizer's
  count of the whole text, else the number of content chunks.
- Steady window: from the send time of the first request after the warm-up (the first
  ceil(warmup × n) requests by send time; without a warm-up share, the requests MSER-5 finds on
  TTFT, `profiler.steady.warmup_requests`) to the last send time. When that is empty (e.g. all
  requests sent at once) the whole point is the window.
- Throughput in the window: output tokens whose chunk arrived inside it ÷ its length (a chunk's
  tokens are the server's per-chunk count when given, else the request's tokens spread evenly
  over its chunks); requests/s = requests that ended inside it ÷ its length; input tokens/s =
  prompt tokens of requests sent inside it ÷ its length.
- Goodput = successful requests that ended inside the window and meet every per-request SLO
  limit, ÷ window length; goodput tokens/s = tokens of those good requests' chunks that arrived
  inside the window ÷ window length (so it never exceeds output tokens/s). Failed requests count against
  it; cancelled ones (cut by the end of a duration point) are neither good nor bad.
"""

from __future__ import annotations

import math

import numpy as np

from profiler.quantiles import percentiles

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
STATS = ("mean", *PERCENTILES)  # every statistic a points.csv latency column and an SLO can name


def stats(values_s: np.ndarray, zeros_to_drop: int = 0) -> dict[str, float]:
    """mean and p50/p90/p95/p99/p99.9 (numpy 'linear' interpolation); NaN when empty.
    `zeros_to_drop`: placeholder zeros in `values_s` that are not part of the sample."""
    v = np.asarray(values_s, dtype=float)
    nan = np.isnan(v)
    if nan.any():
        v = v[~nan]
    n = v.size - zeros_to_drop
    if n <= 0:
        return {"mean": math.nan, **{k: math.nan for k in PERCENTILES}}
    out = {"mean": float(v.mean() if not zeros_to_drop else v.sum() / n)}
    qs = percentiles(v, list(PERCENTILES.values()), zeros_to_drop)  # == np.percentile of the sample
    out.update({k: float(q) for k, q in zip(PERCENTILES, qs, strict=True)})
    return out


def stats_ns(values_ns: np.ndarray, zeros_to_drop: int = 0) -> dict[str, float]:
    """`stats` of non-negative int64 nanoseconds, in seconds: the same percentiles as `stats` of
    values_ns / 1e9; the mean is the exact integer sum / 1e9 / n."""
    v = np.asarray(values_ns, dtype=np.int64)
    n = v.size - zeros_to_drop
    if n <= 0:
        return {"mean": math.nan, **{k: math.nan for k in PERCENTILES}}
    qs = percentiles(v, list(PERCENTILES.values()), zeros_to_drop, unit=1e9)
    return {"mean": int(v.sum()) / 1e9 / n, **{k: float(q) for k, q in zip(PERCENTILES, qs, strict=True)}}


def ttft(send_ns: np.ndarray, first_content_ns: np.ndarray) -> np.ndarray:
    """TTFT per request (s); NaN where no content arrived."""
    send = np.asarray(send_ns, dtype=np.int64)
    first = np.asarray(first_content_ns, dtype=np.int64)
    return np.where(first > 0, (first - send) / 1e9, np.nan)


def e2e(send_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
    return (np.asarray(end_ns, dtype=np.int64) - np.asarray(send_ns, dtype=np.int64)) / 1e9


def output_tokens(usage: np.ndarray, client: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """Server usage, else client tokenizer count, else content chunks (see module docstring)."""
    usage = np.asarray(usage, dtype=np.int64)
    client = np.asarray(client, dtype=np.int64)
    chunks = np.asarray(chunks, dtype=np.int64)
    return np.where(usage >= 0, usage, np.where(client >= 0, client, chunks))


def itl_per_token(first_content_ns: np.ndarray, last_content_ns: np.ndarray, out_tokens: np.ndarray) -> np.ndarray:
    """(last − first content time) / (tokens − 1) per request (s); NaN for < 2 tokens."""
    n = np.asarray(out_tokens, dtype=float)
    span = (np.asarray(last_content_ns, dtype=np.int64) - np.asarray(first_content_ns, dtype=np.int64)) / 1e9
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, span / (n - 1), np.nan)


def tpot(e2e_s: np.ndarray, ttft_s: np.ndarray, out_tokens: np.ndarray) -> np.ndarray:
    """(E2E − TTFT) / (tokens − 1) per request (s); NaN for < 2 tokens."""
    n = np.asarray(out_tokens, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, (np.asarray(e2e_s) - np.asarray(ttft_s)) / (n - 1), np.nan)


def per_request(req) -> dict[str, np.ndarray]:
    """Every per-request figure of a requests.parquet frame (or any mapping of its columns):
    out_tokens, ttft, e2e, itl_token, tpot (seconds). The one place the formulas above are
    applied to request rows, for points.csv and for the report's samples alike."""
    send = np.asarray(req["send_ns"], dtype=np.int64)
    out_tok = output_tokens(req["usage_completion_tokens"], req["client_output_tokens"], req["n_content_chunks"])
    t = ttft(send, req["first_content_ns"])
    e = e2e(send, req["end_ns"])
    return {"out_tokens": out_tok, "ttft": t, "e2e": e,
            "itl_token": itl_per_token(req["first_content_ns"], req["last_content_ns"], out_tok),
            "tpot": tpot(e, t, out_tok)}


def chunk_gaps(request_ids: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Gaps (s) between consecutive content chunks of the same request.

    Input rows may come in any order; they are sorted by (request, time) first.
    """
    req = np.asarray(request_ids, dtype=np.int64)
    t = np.asarray(t_ns, dtype=np.int64)
    order = np.lexsort((t, req))
    req, t = req[order], t[order]
    return run_gaps(t, np.flatnonzero(np.r_[True, req[1:] != req[:-1]]) if req.size else req)


def run_gaps(t_ns: np.ndarray, run_start: np.ndarray) -> np.ndarray:
    """Gaps (s) inside runs: `t_ns` holds each request's chunks together and in time order, run r
    starting at index run_start[r]; the step from one run's last chunk to the next's first is no gap."""
    t = np.asarray(t_ns, dtype=np.int64)
    if t.size < 2:
        return np.empty(0)
    keep = np.ones(t.size - 1, bool)
    keep[np.asarray(run_start[1:], dtype=np.int64) - 1] = False
    return np.diff(t)[keep] / 1e9


def sorted_by_request_time(request_ids: np.ndarray, t_ns: np.ndarray) -> bool:
    """True when rows are already ordered by (request, time), as the appended layout stores them."""
    d_req = np.diff(np.asarray(request_ids))
    return bool(np.all((d_req > 0) | ((d_req == 0) & (np.diff(np.asarray(t_ns)) >= 0))))


def steady_window(send_ns: np.ndarray, end_ns: np.ndarray, warmup_frac: float,
                  skip: int | None = None) -> tuple[int, int, bool]:
    """(start_ns, end_ns, steady): see the module docstring. steady=False means the whole point.
    `skip`: the warm-up as a request count (MSER-5, `profiler.steady.warmup_requests`) instead of a share."""
    send = np.sort(np.asarray(send_ns, dtype=np.int64))
    if send.size == 0:
        return 0, 0, False
    k = min(send.size - 1, skip if skip is not None else math.ceil(warmup_frac * send.size))
    start, stop = int(send[k]), int(send[-1])
    if stop > start:
        return start, stop, True
    return int(send[0]), int(np.max(end_ns)), False


def lookup(ids: np.ndarray, values: np.ndarray, query: np.ndarray, default) -> np.ndarray:
    """values[i] for each query equal to ids[i] (ids unique), `default` where absent. Vectorized:
    a dense table when ids are small non-negative integers (request ids are), else a sorted search."""
    ids = np.asarray(ids, dtype=np.int64)
    values = np.asarray(values)
    query = np.asarray(query, dtype=np.int64)
    out = np.full(query.size, default, dtype=np.result_type(values.dtype, np.asarray(default).dtype))
    if not ids.size or not query.size:
        return out
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < 4 * ids.size + 1_000_000:
        table = np.full(hi + 1, default, dtype=out.dtype)
        table[ids] = values
        inside = query <= hi
        out[inside] = table[query[inside]]
        return out
    order = np.argsort(ids, kind="stable")
    pos = np.clip(np.searchsorted(ids[order], query), 0, ids.size - 1)
    found = ids[order][pos] == query
    out[found] = values[order][pos][found]
    return out
