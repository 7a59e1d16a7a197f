"""Per-node facts of a point run on Ray actors (profiler/raypool.py), and their trust rule.

points.jsonl of a Ray point carries, besides the usual pooled `client` facts (worst worker of
any node):
- `nodes`: one entry per node: its workers, requests sent, share of the point's scheduled
  requests, achieved request rate ((n - 1) / span of its sends), client CPU (its busiest worker,
  a fraction of a core), loop lag p99 (ms) and its clock (offset to the driver and uncertainty at
  the point's start and end, the offset applied, drift);
- `ray`: Ray's own overhead: the start barrier's skew across workers (max - min of how late each
  sent its first request after the instant it was due), the clock uncertainty bounding it, the
  least margin a job arrived with before the barrier, the longest parse and shipping times;
- `nodes_lost`: workers whose node or actor died mid-point (their requests are missing).

Trust (added to profiler/summary.py's rules): a point is untrusted if any node's client
saturated by the same rules as a local run (CPU >= 90 % of a core; loop lag p99 over
max(2 ms, a fifth of the median chunk gap); open loop: that node's achieved rate below 95 % of
its share of the target), or a node was lost.
"""

from __future__ import annotations

import math

from backends.laghist import LagHistogram


def _node_entry(node: str, ident: dict, actors: list[dict], total_scheduled: int) -> dict:
    lag = LagHistogram()
    for a in actors:
        lag.extend(a["lag"])
    n = sum(a["requests"] for a in actors)
    firsts = [a["first_send_ns"] for a in actors if a["requests"]]
    lasts = [a["last_send_ns"] for a in actors if a["requests"]]
    span = (max(lasts) - min(firsts)) / 1e9 if firsts else 0.0
    cpu = [a["cpu_frac"] for a in actors if a["cpu_frac"] is not None]
    return {
        "node": node, "ip": ident.get("ip", ""), "hostname": ident.get("hostname", ""),
        "workers": [a["worker"] for a in actors], "requests": n,
        "share": sum(a["scheduled"] for a in actors) / total_scheduled if total_scheduled else math.nan,
        "achieved_rate": (n - 1) / span if n > 1 and span > 0 else math.nan,
        "cpu_frac_max_worker": max(cpu) if cpu else math.nan,
        "lag_p99_ms": float(lag.percentile(99) / 1000) if len(lag) else math.nan,
        "lag_samples": len(lag),
        "clock": [{"worker": a["worker"], **a["clock"]} for a in actors],
    }


def point_facts(last: dict) -> dict:
    """`nodes`, `ray` and `nodes_lost` of one point from RayPool's per-actor results."""
    actors = list(last.get("actors", {}).values())
    identity = last.get("identity", {})
    by_node: dict[str, list[dict]] = {}
    for a in actors:
        by_node.setdefault(identity.get(a["worker"], {}).get("node", ""), []).append(a)
    total = sum(a["scheduled"] for a in actors)
    nodes = [_node_entry(node, identity.get(acts[0]["worker"], {}), acts, total) for node, acts in by_node.items()]
    late = [a["start_late_ms"] for a in actors if a["start_late_ms"] is not None]
    unc = [a["clock"]["uncertainty_ns"] / 1e6 for a in actors]
    ray = {
        "start_skew_ms": max(late) - min(late) if late else math.nan,
        "start_late_max_ms": max(late) if late else math.nan,
        "clock_uncertainty_max_ms": max(unc) if unc else math.nan,
        "dispatch_margin_min_ms": min((a["dispatch_margin_ms"] for a in actors), default=math.nan),
        "parse_max_ms": max((a["parse_ms"] for a in actors), default=math.nan),
        "ship_max_ms": max((a["ship_ms"] for a in actors), default=math.nan),
    }
    return {"nodes": nodes, "ray": ray, "nodes_lost": last.get("lost", [])}


def trust_reasons(facts: dict, itl_p50_ms: float, cpu_limit: float, lag_limit_ms: float,
                  rate_shortfall: float) -> list[str]:
    """Why a Ray point is untrusted because of one node (pure; [] for local runs)."""
    out = []
    for nd in facts.get("nodes") or []:
        name = f"node {str(nd.get('node', ''))[:8]}"
        cpu, lag = nd.get("cpu_frac_max_worker", math.nan), nd.get("lag_p99_ms", math.nan)
        if cpu is not None and cpu >= cpu_limit:
            out.append(f"{name}: client CPU {cpu:.0%} of a core")
        if lag is not None and lag > max(lag_limit_ms, 0.2 * itl_p50_ms):
            out.append(f"{name}: client timestamp lag p99 {lag:.1f} ms")
        target = facts.get("load", 0) * nd.get("share", math.nan)
        rate = nd.get("achieved_rate", math.nan)
        if facts.get("mode") == "rate" and rate is not None and rate < rate_shortfall * target:
            out.append(f"{name}: achieved {rate:.2f} of its {target:.2f} req/s")
    for lost in facts.get("nodes_lost") or []:
        out.append(f"node {str(lost.get('node', ''))[:8]} lost mid-point ({lost.get('why', '')}): its requests are missing")
    return out
