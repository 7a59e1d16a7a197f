"""One row of points.csv per sweep point, computed from the run folder's raw files only.

`summarize_point` is pure: the same raw rows give the same row, which is how
`inferprof report RUN_DIR` reproduces points.csv exactly.

Trust rules (a point failing any is marked trusted=False, with the reasons):
- client CPU: a worker process used >= 90 % of a core while the point ran (it was the bottleneck);
- timestamp lag: the p99 of how late the client could stamp an arriving chunk exceeded both 2 ms
  and a fifth of the point's median chunk gap. With the epoll transport that is the time one loop
  iteration spent handling ready sockets (a chunk read last in the iteration was stamped that much
  after the first); with the threads transport, the delay of a 5 ms sleep probe;
- open loop: achieved request rate below 95 % of the target, or client queue time p99 above 10 ms
  (requests left later than scheduled).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profiler import metrics as m

CPU_SATURATED = 0.90
LAG_P99_LIMIT_MS = 2.0
RATE_SHORTFALL = 0.95
QUEUE_P99_LIMIT_MS = 10.0

_LAT = ("ttft", "itl", "itl_token", "tpot", "e2e")
_STATS = ("mean", "p50", "p90", "p95", "p99", "p999")

POINT_COLUMNS = (
    ["point", "mode", "load", "concurrency", "rate_target", "rate_achieved", "workers",
     "requests", "ok", "errors", "cancelled", "error_rate", "error_kinds", "window_s", "duration_s", "steady"]
    + [f"{lat}_{s}_ms" for lat in _LAT for s in _STATS]
    + ["input_tokens", "output_tokens", "input_tokens_total", "output_tokens_total",
       "req_per_s", "input_tok_per_s", "output_tok_per_s", "output_tok_per_s_whole",
       "goodput_req_per_s", "goodput_tok_per_s", "slo_met", "slo_failed",
       "tokens_per_chunk_mean", "output_tokens_requested_mean", "output_tokens_mean",
       "usage_missing", "client_token_mismatch", "prompt_tokens_mismatch",
       "client_queue_p99_ms", "client_cpu", "loop_lag_p99_ms", "burst_frac",
       "server_ttft_p50_ms", "ttft_overhead_ms", "trusted", "trust_reason"]
)


def summarize_point(facts: dict, req: pd.DataFrame, chunks: pd.DataFrame, slos: dict[str, float],
                    warmup_frac: float) -> dict:
    """points.csv row for one point. `req`/`chunks` hold only this point's rows."""
    row: dict = {c: math.nan for c in POINT_COLUMNS}
    mode = facts["mode"]
    row.update(point=facts["point"], mode=mode, load=facts["load"], workers=facts.get("workers", 1),
               concurrency=facts["load"] if mode == "concurrency" else math.nan,
               rate_target=facts["load"] if mode == "rate" else math.nan)
    n = len(req)
    err = req["error"].astype(str).to_numpy() if n else np.array([], dtype=str)
    cancelled = err == "cancelled"
    ok = err == ""
    n_ok, n_cancel = int(ok.sum()), int(cancelled.sum())
    n_err = n - n_ok - n_cancel
    kinds = pd.Series(err[~ok & ~cancelled]).value_counts()
    row.update(requests=n, ok=n_ok, errors=n_err, cancelled=n_cancel,
               error_rate=(n_err / (n - n_cancel)) if n - n_cancel else math.nan,
               error_kinds=";".join(f"{k}:{v}" for k, v in kinds.items()))
    if n == 0:
        row.update(trusted=False, trust_reason="no requests were sent", slo_met="")
        return row

    send = req["send_ns"].to_numpy(np.int64)
    end = req["end_ns"].to_numpy(np.int64)
    per = m.per_request(req)
    out_tok, ttft, e2e, itl_tok, tpot = (per[k] for k in ("out_tokens", "ttft", "e2e", "itl_token", "tpot"))

    start_ns, stop_ns, steady = m.steady_window(send, end, warmup_frac)
    window_s = (stop_ns - start_ns) / 1e9
    in_window = ok & (send >= start_ns) & (send <= stop_ns)
    row.update(window_s=window_s, steady=steady,
               duration_s=(int(end.max()) - int(send.min())) / 1e9)

    rid = req["request"].to_numpy(np.int64)
    ok_ids = set(rid[ok].tolist())
    ch = chunks[chunks["request"].isin(ok_ids)] if len(chunks) else chunks
    gaps = m.chunk_gaps(ch["request"], ch["t_ns"]) if len(ch) else np.empty(0)
    for lat, values in (("ttft", ttft[in_window]), ("itl", gaps), ("itl_token", itl_tok[in_window]),
                        ("tpot", tpot[in_window]), ("e2e", e2e[in_window])):
        for s, v in m.stats(values).items():
            row[f"{lat}_{s}_ms"] = v * 1e3

    chunk_tok = (m.chunk_token_estimates(ch["request"], ch["tokens"], rid, out_tok, req["n_content_chunks"])
                 if len(ch) else np.empty(0))
    t_chunks = ch["t_ns"].to_numpy(np.int64) if len(ch) else np.empty(0, np.int64)
    out_in_window = m.tokens_in_window(t_chunks, chunk_tok, start_ns, stop_ns)
    prompt = np.where(req["usage_prompt_tokens"].to_numpy() >= 0, req["usage_prompt_tokens"], req["input_tokens"])
    sent_in_window = (send >= start_ns) & (send <= stop_ns)
    ended_in_window = ok & (end >= start_ns) & (end <= stop_ns)
    row.update(input_tokens=float(prompt[sent_in_window].sum()), output_tokens=out_in_window,
               input_tokens_total=float(prompt[ok].sum()), output_tokens_total=float(out_tok[ok].sum()))
    whole_s = row["duration_s"]
    if window_s > 0:
        row.update(req_per_s=ended_in_window.sum() / window_s, output_tok_per_s=out_in_window / window_s,
                   input_tok_per_s=row["input_tokens"] / window_s)
    if whole_s > 0:
        row["output_tok_per_s_whole"] = row["output_tokens_total"] / whole_s

    per_request = {"ttft": ttft, "itl": itl_tok, "tpot": tpot, "e2e": e2e}
    if slos:
        limits = {name.split("_", 1)[0]: v for name, v in slos.items()}
        good = ok & m.meets_limits(per_request, limits)
        if window_s > 0:
            row["goodput_req_per_s"] = (good & ended_in_window).sum() / window_s
            good_chunks = ch["request"].isin(set(rid[good].tolist())).to_numpy() if len(ch) else np.empty(0, bool)
            row["goodput_tok_per_s"] = m.tokens_in_window(t_chunks[good_chunks], chunk_tok[good_chunks],
                                                          start_ns, stop_ns) / window_s
        failed = []
        for name, limit in slos.items():
            metric, stat = name.split("_", 1)
            value_ms = row.get(f"{metric}_{stat}_ms", math.nan)
            if metric == "itl":  # the per-chunk distribution is what users read as ITL percentiles
                value_ms = row[f"itl_{stat}_ms"]
            if not (value_ms <= limit * 1e3):
                failed.append(f"{name}={value_ms:.1f}ms>{limit * 1e3:g}ms")
        row["slo_met"] = not failed
        row["slo_failed"] = ";".join(failed)
    else:
        row["slo_met"] = ""
        row["slo_failed"] = ""

    chunks_ok = req["n_content_chunks"].to_numpy()[ok]
    row["tokens_per_chunk_mean"] = float(out_tok[ok].sum() / chunks_ok.sum()) if chunks_ok.sum() else math.nan
    row["output_tokens_requested_mean"] = float(req["max_tokens"].to_numpy()[ok].mean()) if n_ok else math.nan
    row["output_tokens_mean"] = float(out_tok[ok].mean()) if n_ok else math.nan
    usage = req["usage_completion_tokens"].to_numpy()[ok]
    client = req["client_output_tokens"].to_numpy()[ok]
    row["usage_missing"] = int((usage < 0).sum())
    both = (usage >= 0) & (client >= 0)
    row["client_token_mismatch"] = float(np.abs(client[both] - usage[both]).sum() / usage[both].sum()) if both.any() and usage[both].sum() else math.nan
    up = req["usage_prompt_tokens"].to_numpy()[ok]
    inp = req["input_tokens"].to_numpy()[ok]
    has = up >= 0
    row["prompt_tokens_mismatch"] = float(np.abs(up[has] - inp[has]).sum() / max(1, up[has].sum())) if has.any() else math.nan

    queue_ms = (send - req["scheduled_ns"].to_numpy(np.int64)) / 1e6
    row["client_queue_p99_ms"] = float(np.percentile(queue_ms, 99)) if mode == "rate" else 0.0
    if mode == "rate" and n > 1:
        span = (send.max() - send.min()) / 1e9
        row["rate_achieved"] = (n - 1) / span if span > 0 else math.nan
    client = facts.get("client", {})
    row["client_cpu"] = client.get("cpu_frac_max_worker", math.nan)
    row["loop_lag_p99_ms"] = client.get("lag_p99_ms", math.nan)
    bursts = req["bursts"].to_numpy()[ok].sum()
    row["burst_frac"] = float(bursts / chunks_ok.sum()) if chunks_ok.sum() else math.nan

    server_hist = facts.get("server_ttft_hist")
    if server_hist:
        from profiler.telemetry.histograms import histogram_quantile

        hist = {float(k): float(v) for k, v in server_hist.items()}
        q = histogram_quantile(hist, 0.5)
        if q == q:
            row["server_ttft_p50_ms"] = q * 1e3
            row["ttft_overhead_ms"] = row["ttft_p50_ms"] - q * 1e3

    reasons = []
    if row["client_cpu"] >= CPU_SATURATED:
        reasons.append(f"client CPU {row['client_cpu']:.0%} of a core")
    if row["loop_lag_p99_ms"] > max(LAG_P99_LIMIT_MS, 0.2 * row["itl_p50_ms"]):
        reasons.append(f"client timestamp lag p99 {row['loop_lag_p99_ms']:.1f} ms")
    if mode == "rate":
        if row["rate_achieved"] < RATE_SHORTFALL * facts["load"]:
            reasons.append(f"achieved {row['rate_achieved']:.2f} req/s of {facts['load']:g} target")
        if row["client_queue_p99_ms"] > QUEUE_P99_LIMIT_MS:
            reasons.append(f"client queue p99 {row['client_queue_p99_ms']:.1f} ms")
    if n_ok == 0:
        reasons.append("no successful request")
    row["trusted"] = not reasons
    row["trust_reason"] = "; ".join(reasons)
    return row
