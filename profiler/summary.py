"""One row of points.csv per sweep point: a merge of small pure parts over one `PointView`.

`summarize_point` is pure: the same raw rows give the same row, which is how
`inferprof report RUN_DIR` reproduces points.csv exactly. Each part below fills the columns it
names; the formulas are in `profiler.metrics` and `profiler.slo`.

Trust rules (a point failing any is marked trusted=False, with the reasons):
- client CPU: a worker process used >= 90 % of a core while the point ran (it was the bottleneck);
- timestamp lag: the p99 of how late the client could act on a socket exceeded both 2 ms and a
  fifth of the point's median chunk gap. With the epoll transport that is the time one loop
  iteration spent handling ready sockets (a request sent last in the iteration left that much
  after the first; chunks keep the kernel's arrival stamp, backends/rxstamp.py, where it is given);
  with the threads transport, the delay of a 5 ms sleep probe (chunks are stamped after the read);
- open loop: achieved request rate below 95 % of the target, or client queue time p99 above 10 ms
  (requests left later than scheduled);
- connections opened ahead of the start (a closed loop's streams; TLS handshakes included) were
  still opening at the start: that work took the client's core while the first chunks arrived.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profiler import metrics as m
from profiler import slo as slo_rules
from profiler.failures import COLUMNS as FAILURE_COLUMNS
from profiler.failures import failures
from profiler.pointview import PointView

CPU_SATURATED = 0.90
LAG_P99_LIMIT_MS = 2.0
RATE_SHORTFALL = 0.95
QUEUE_P99_LIMIT_MS = 10.0

LATENCY = ("ttft", "itl", "itl_token", "tpot", "e2e")  # points.csv <metric>_<stat>_ms columns

POINT_COLUMNS = (
    ["point", "mode", "load", "concurrency", "rate_target", "rate_achieved", "workers",
     "requests", "ok", "errors", "cancelled", "error_rate", "error_kinds", "window_s", "duration_s", "steady"]
    + [f"{lat}_{s}_ms" for lat in LATENCY for s in m.STATS]
    + ["input_tokens", "output_tokens", "input_tokens_total", "output_tokens_total",
       "req_per_s", "input_tok_per_s", "output_tok_per_s", "output_tok_per_s_whole",
       "goodput_req_per_s", "goodput_tok_per_s", "slo_met", "slo_failed",
       "tokens_per_chunk_mean", "output_tokens_requested_mean", "output_tokens_mean",
       "usage_missing", "client_token_mismatch", "prompt_tokens_mismatch",
       "client_queue_p99_ms", "client_cpu", "loop_lag_p99_ms", "burst_frac",
       "server_ttft_p50_ms", "ttft_overhead_ms", "trusted", "trust_reason"]
    + FAILURE_COLUMNS  # profiler/failures.py
)


def summarize_point(facts: dict, req: pd.DataFrame, chunks: pd.DataFrame, slos: dict[str, float],
                    warmup_frac: float) -> dict:
    """points.csv row for one point. `req`/`chunks` hold only this point's rows (content chunks)."""
    view = PointView.build(facts, req, chunks, warmup_frac)
    row = summarize_view(view, facts, slos)
    from profiler.traffic_summary import columns as traffic_columns

    row.update(traffic_columns(facts, req, view))  # only for runs with traces, prefixes or reasoning
    return row


def summarize_view(v: PointView, facts: dict, slos: dict[str, float]) -> dict:
    row: dict = {c: math.nan for c in POINT_COLUMNS}
    row.update(identity(v, facts))
    row.update(counts(v))
    row.update(failures(v, facts, slos))
    if v.n == 0:
        row.update(trusted=False, trust_reason="no requests were sent", slo_met="")
        return row
    for part in (latency, throughput, tokens):
        row.update(part(v))
    row.update(client(v, facts))
    row.update(slo_verdict(v, row, slos))
    row.update(server_ttft(facts, row["ttft_p50_ms"]))
    row.update(trust(v, row, facts))
    return row


def identity(v: PointView, facts: dict) -> dict:
    concurrency = v.mode == "concurrency"
    return dict(point=facts["point"], mode=v.mode, load=facts["load"], workers=facts.get("workers", 1),
                concurrency=facts["load"] if concurrency else math.nan,
                rate_target=facts["load"] if v.mode == "rate" else math.nan)


def counts(v: PointView) -> dict:
    n_ok, n_cancel = int(v.ok.sum()), int(v.cancelled.sum())
    n_err = v.n - n_ok - n_cancel
    kinds = pd.Series(v.error[v.failed]).value_counts()
    return dict(requests=v.n, ok=n_ok, errors=n_err, cancelled=n_cancel,
                error_rate=(n_err / (v.n - n_cancel)) if v.n - n_cancel else math.nan,
                error_kinds=";".join(f"{k}:{c}" for k, c in kinds.items()))


def latency(v: PointView) -> dict:
    """<metric>_<stat>_ms: per-request figures over the steady window, chunk gaps over every
    successful request."""
    w = v.in_window
    out = {f"itl_{s}_ms": x * 1e3 for s, x in v.chunks.gap_stats().items()}
    for lat in ("ttft", "itl_token", "tpot", "e2e"):
        out.update({f"{lat}_{s}_ms": x * 1e3 for s, x in m.stats(v.per[lat][w]).items()})
    return out


def throughput(v: PointView) -> dict:
    ok, out_tok, window_s = v.ok, v.per["out_tokens"], v.window_s
    duration_s = (int(v.end_ns.max()) - int(v.send_ns.min())) / 1e9
    row = dict(window_s=window_s, steady=v.steady, duration_s=duration_s,
               input_tokens=float(v.prompt_tokens[v.sent_in_window].sum()), output_tokens=v.tokens_in_window(),
               input_tokens_total=float(v.prompt_tokens[ok].sum()), output_tokens_total=float(out_tok[ok].sum()))
    if window_s > 0:
        row.update(req_per_s=v.ended_in_window.sum() / window_s, output_tok_per_s=row["output_tokens"] / window_s,
                   input_tok_per_s=row["input_tokens"] / window_s)
    if duration_s > 0:
        row["output_tok_per_s_whole"] = row["output_tokens_total"] / duration_s
    return row


def slo_verdict(v: PointView, row: dict, slos: dict[str, float]) -> dict:
    """goodput_* (requests meeting every SLO, see profiler.slo) and slo_met / slo_failed."""
    if not slos:
        return dict(slo_met="", slo_failed="")
    per_request = dict(v.per)
    if any(s.metric == "itl" for s in slo_rules.slo_list(slos)):
        per_request["itl"] = v.longest_gap_s  # computed only when an `itl` SLO asks for it
    good = v.ok & slo_rules.requests_meeting(per_request, slos)
    met, failed = slo_rules.evaluate_row(row, slos)
    out = dict(slo_met=met, slo_failed=";".join(failed))
    if v.window_s > 0:
        out["goodput_req_per_s"] = (good & v.ended_in_window).sum() / v.window_s
        out["goodput_tok_per_s"] = v.tokens_in_window(good) / v.window_s
    return out


def tokens(v: PointView) -> dict:
    ok, out_tok, c = v.ok, v.per["out_tokens"], v.cols
    chunks_ok = c["n_content_chunks"][ok].sum()
    usage, client_count = c["usage_completion_tokens"][ok], c["client_output_tokens"][ok]
    both = (usage >= 0) & (client_count >= 0)
    up, asked = c["usage_prompt_tokens"][ok], c["input_tokens"][ok]
    has = up >= 0
    return dict(
        tokens_per_chunk_mean=float(out_tok[ok].sum() / chunks_ok) if chunks_ok else math.nan,
        output_tokens_requested_mean=float(c["max_tokens"][ok].mean()) if ok.any() else math.nan,
        output_tokens_mean=float(out_tok[ok].mean()) if ok.any() else math.nan,
        usage_missing=int((usage < 0).sum()),
        client_token_mismatch=(float(np.abs(client_count[both] - usage[both]).sum() / usage[both].sum())
                               if both.any() and usage[both].sum() else math.nan),
        prompt_tokens_mismatch=(float(np.abs(up[has] - asked[has]).sum() / max(1, up[has].sum()))
                                if has.any() else math.nan),
        burst_frac=float(c["bursts"][ok].sum() / chunks_ok) if chunks_ok else math.nan)


def client(v: PointView, facts: dict) -> dict:
    """How the load generator itself fared: queueing behind schedule, CPU, timestamp lag."""
    queue_ms = (v.send_ns - v.scheduled_ns) / 1e6
    row = dict(client_queue_p99_ms=float(np.percentile(queue_ms, 99)) if v.mode == "rate" else 0.0)
    if v.mode == "rate" and v.n > 1:
        span = (v.send_ns.max() - v.send_ns.min()) / 1e9
        row["rate_achieved"] = (v.n - 1) / span if span > 0 else math.nan
    c = facts.get("client", {})
    row.update(client_cpu=c.get("cpu_frac_max_worker", math.nan), loop_lag_p99_ms=c.get("lag_p99_ms", math.nan))
    return row


def server_ttft(facts: dict, ttft_p50_ms: float) -> dict:
    """The server's own TTFT median (its histogram's delta over the point) and the client's overhead."""
    hist = facts.get("server_ttft_hist")
    if not hist:
        return {}
    from profiler.telemetry.histograms import histogram_quantile

    q = histogram_quantile({float(k): float(x) for k, x in hist.items()}, 0.5)
    if q != q:
        return {}
    return dict(server_ttft_p50_ms=q * 1e3, ttft_overhead_ms=ttft_p50_ms - q * 1e3)


def trust(v: PointView, row: dict, facts: dict) -> dict:
    """trusted / trust_reason: the rules in the module docstring."""
    reasons = []
    if row["client_cpu"] >= CPU_SATURATED:
        reasons.append(f"client CPU {row['client_cpu']:.0%} of a core")
    if row["loop_lag_p99_ms"] > max(LAG_P99_LIMIT_MS, 0.2 * row["itl_p50_ms"]):
        reasons.append(f"client timestamp lag p99 {row['loop_lag_p99_ms']:.1f} ms")
    if v.mode == "rate":
        if row["rate_achieved"] < RATE_SHORTFALL * facts["load"]:
            reasons.append(f"achieved {row['rate_achieved']:.2f} req/s of {facts['load']:g} target")
        if row["client_queue_p99_ms"] > QUEUE_P99_LIMIT_MS:
            reasons.append(f"client queue p99 {row['client_queue_p99_ms']:.1f} ms")
    opening = facts.get("client", {}).get("conns_opening_at_start", 0)
    if opening:
        reasons.append(f"{opening} connection(s) still opening (TLS handshake) at the start")
    if not v.ok.any():
        reasons.append("no successful request")
    if facts.get("nodes") or facts.get("nodes_lost"):  # a Ray run: any node saturated (profiler/nodefacts.py)
        from profiler.nodefacts import trust_reasons

        reasons += trust_reasons(facts, row["itl_p50_ms"], CPU_SATURATED, LAG_P99_LIMIT_MS, RATE_SHORTFALL)
    return dict(trusted=not reasons, trust_reason="; ".join(reasons))
