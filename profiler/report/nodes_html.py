"""The report's "Load per node" table: a run whose workers were Ray actors (profiler/nodefacts.py)."""

from __future__ import annotations

import math


def _num(x, fmt: str) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _row(f: dict, nd: dict, lost: bool, esc) -> str:
    clocks = nd.get("clock") or [{}]
    off = max((abs(c.get("offset_ns", 0)) for c in clocks), default=0) / 1e6
    unc = max((c.get("uncertainty_ns", 0) for c in clocks), default=0) / 1e6
    cells = [f.get("point"), f"{f.get('load', '')}", str(nd.get("node", ""))[:12], nd.get("ip", ""),
             ",".join(str(w) for w in nd.get("workers", [])), nd.get("requests", ""),
             _num(nd.get("share"), "{:.0%}"), _num(nd.get("achieved_rate"), "{:.2f}"),
             _num(nd.get("cpu_frac_max_worker"), "{:.0%}"), _num(nd.get("lag_p99_ms"), "{:.2f}"),
             f"{off:.2f} ± {unc:.2f}", "lost mid-point" if lost else ""]
    return "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"


def nodes_section(facts: list[dict], esc) -> str:
    """'' for a local run; else per point and node: its share of the load and how its client fared."""
    if not any(f.get("nodes") or f.get("nodes_lost") for f in facts):
        return ""
    head = ["point", "load", "node", "ip", "workers", "requests", "share", "req/s sent", "client CPU",
            "loop lag p99 ms", "|clock offset| ± ms", ""]
    rows = []
    for f in facts:
        lost = {x.get("node") for x in f.get("nodes_lost") or []}
        rows += [_row(f, nd, nd.get("node") in lost, esc) for nd in f.get("nodes") or []]
        rows += [_row(f, {"node": x.get("node"), "workers": [x.get("worker")]}, True, esc)
                 for x in f.get("nodes_lost") or []]
    skew = [f["ray"]["start_skew_ms"] for f in facts if isinstance(f.get("ray"), dict)
            and isinstance(f["ray"].get("start_skew_ms"), int | float) and not math.isnan(f["ray"]["start_skew_ms"])]
    note = (f"<p class=\"sub\">Start barrier skew across workers: at most {max(skew):.2f} ms. A point is untrusted "
            "if any node's client saturated (CPU ≥ 90 % of a core, loop lag, or its share of an open-loop rate "
            "not reached) or a node was lost.</p>") if skew else ""
    return ("<div class=tw><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}")
