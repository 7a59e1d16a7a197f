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
- Steady window: from the send time of the first request after the warm-up share (the first
  ceil(warmup × n) requests by send time) to the last send time. When that is empty (e.g. all
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

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def stats(values_s: np.ndarray) -> dict[str, float]:
    """mean and p50/p90/p95/p99/p99.9 (numpy 'linear' interpolation); NaN when empty."""
    v = np.asarray(values_s, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"mean": math.nan, **{k: math.nan for k in PERCENTILES}}
    out = {"mean": float(v.mean())}
    qs = np.percentile(v, list(PERCENTILES.values()))
    out.update({k: float(q) for k, q in zip(PERCENTILES, qs, strict=True)})
    return out


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
    if req.size < 2:
        return np.empty(0)
    order = np.lexsort((t, req))
    req, t = req[order], t[order]
    same = req[1:] == req[:-1]
    return (np.diff(t)[same]) / 1e9


def steady_window(send_ns: np.ndarray, end_ns: np.ndarray, warmup_frac: float) -> tuple[int, int, bool]:
    """(start_ns, end_ns, steady): see the module docstring. steady=False means the whole point."""
    send = np.sort(np.asarray(send_ns, dtype=np.int64))
    if send.size == 0:
        return 0, 0, False
    k = min(send.size - 1, math.ceil(warmup_frac * send.size))
    start, stop = int(send[k]), int(send[-1])
    if stop > start:
        return start, stop, True
    return int(send[0]), int(np.max(end_ns)), False


def tokens_in_window(chunk_t_ns: np.ndarray, chunk_tokens: np.ndarray, start_ns: int, end_ns: int) -> float:
    """Tokens carried by chunks that arrived within [start_ns, end_ns]."""
    t = np.asarray(chunk_t_ns, dtype=np.int64)
    tok = np.asarray(chunk_tokens, dtype=float)
    mask = (t >= start_ns) & (t <= end_ns)
    return float(tok[mask].sum())


def chunk_token_estimates(chunk_request: np.ndarray, chunk_tokens: np.ndarray, request_ids: np.ndarray,
                          request_out_tokens: np.ndarray, request_chunks: np.ndarray) -> np.ndarray:
    """Tokens per chunk: the server's count where given (>= 0), else the request's tokens / chunks."""
    per_req = {int(r): (float(o) / c if c > 0 else 0.0)
               for r, o, c in zip(request_ids, request_out_tokens, request_chunks, strict=True)}
    tok = np.asarray(chunk_tokens, dtype=float)
    est = np.array([per_req.get(int(r), 0.0) for r in chunk_request], dtype=float)
    return np.where(tok >= 0, tok, est)


def meets_limits(values_by_metric: dict[str, np.ndarray], limits_s: dict[str, float]) -> np.ndarray:
    """Per request: True when every metric named in `limits_s` (by metric, e.g. 'ttft') is within its
    limit. A NaN value (e.g. no TPOT for a 1-token output) does not fail a limit."""
    ok = None
    for metric, limit in limits_s.items():
        v = np.asarray(values_by_metric[metric], dtype=float)
        good = np.isnan(v) | (v <= limit)
        ok = good if ok is None else ok & good
    return ok
