"""points.csv columns of production-like traffic, present only in the runs that have it (so the
tables of other runs keep their columns):

- trace replay: `trace_speed`; `trace_lag_p99_ms` = p99 over requests of (send time - the
  trace's time for it, scaled by the speed), i.e. how far behind the trace the client sent. The
  sweep's open-loop trust rules apply to a replay: an achieved rate below 95 % of the trace's
  (`rate_target` = the trace's mean rate x speed) or a lag p99 above 10 ms makes the point
  untrusted (profiler/summary.py `trust`).
- shared prefixes (prefix groups, Mooncake hash ids, multi-turn history): `prefix_shareable_frac`
  = shareable / prompt tokens (workloads/prefixes.py), the hit rate an ideal prefix cache would
  reach, and next to it (in every run whose server exports the counters)
  `server_prefix_hit_rate` = growth of the server's
  `vllm:prefix_cache_hits` / growth of `vllm:prefix_cache_queries` between the scrapes just
  before and just after the point (the whole point; the telemetry column
  `prefix_cache_hit_rate` uses the periodic samples inside the point's window and can miss its
  last requests).
- reasoning: `ttfa_<stat>_ms`, the time to first ANSWER token (send -> first non-reasoning
  content event) over the steady window's successful requests, `reasoning_tokens_mean` (usage's
  reasoning_tokens when reported, else the reasoning events' tokens) and `reasoning_frac`
  (reasoning tokens / output tokens). Present when any request streamed reasoning.
"""

from __future__ import annotations

import math

import numpy as np

from profiler import metrics as m
from profiler.pointview import PointView


def columns(facts: dict, req, v: PointView) -> dict:
    out: dict = {}
    trace = facts.get("trace")
    if trace and v.n:
        lag_ms = (v.send_ns - v.scheduled_ns) / 1e6
        out.update(trace_speed=float(trace.get("speed", math.nan)),
                   trace_lag_p99_ms=float(np.percentile(lag_ms, 99)))
    prefix = facts.get("prefix")
    if prefix:
        total = prefix.get("prompt_tokens") or 0
        out["prefix_shareable_frac"] = prefix.get("shareable_tokens", 0) / total if total else math.nan
    server = facts.get("server_prefix_cache")
    if server:
        q = server.get("queries") or 0
        out["server_prefix_hit_rate"] = server.get("hits", 0) / q if q > 0 else math.nan
    out.update(_reasoning(req, v))
    return out


def _reasoning(req, v: PointView) -> dict:
    if not v.n or "reasoning_chunk_tokens" not in req:
        return {}
    chunk_tokens = np.asarray(req["reasoning_chunk_tokens"], dtype=np.int64)
    usage = np.asarray(req["reasoning_tokens"], dtype=np.int64)
    tokens = np.where(usage >= 0, usage, chunk_tokens)
    if not (tokens[v.ok] > 0).any():
        return {}
    answer = np.asarray(req["first_answer_ns"], dtype=np.int64)
    has = v.in_window & (answer > 0)
    ttfa = (answer[has] - v.send_ns[has]) / 1e9
    out = {f"ttfa_{s}_ms": x * 1e3 for s, x in m.stats(ttfa).items()}
    out_tokens = v.per["out_tokens"][v.ok]
    out["reasoning_tokens_mean"] = float(tokens[v.ok].mean())
    out["reasoning_frac"] = float(tokens[v.ok].sum() / out_tokens.sum()) if out_tokens.sum() > 0 else math.nan
    return out
