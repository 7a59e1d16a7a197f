"""The capacity-search section of report.html: the answer first, then the trail (search.json)."""

from __future__ import annotations

import math

import pandas as pd

from profiler.capacity_cli import answer_line, search_summary


def _fmt(v, spec: str = ".3g") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return format(f, spec) if math.isfinite(f) else "–"


def search_section(run_dir, search: dict, points: pd.DataFrame, esc) -> str:
    """HTML: the answer line, the bracket, and one row per probe (load, verdict, interval, why it ended)."""
    summary = search_summary(run_dir, points) or {}
    rows = []
    for p in search.get("probes", []):
        ivs = "; ".join(f"{esc(s['name'])}: {_fmt(s.get('estimate'))} [{_fmt(s.get('lo'))}, {_fmt(s.get('hi'))}] "
                        f"vs {_fmt(s.get('target'))} (n={s.get('n')})" for s in p.get("slos", []))
        rows.append(f"<tr><td>{p['point']}</td><td>{_fmt(p['load'], 'g')}</td><td>{esc(p['role'])}</td>"
                    f"<td>{esc(p['verdict'])}</td><td>{ivs}</td><td>{p.get('warmup_cut', 0)}</td>"
                    f"<td>{esc(p.get('ended', ''))}</td><td>{_fmt(p.get('seconds'), '.1f')}</td></tr>")
    bracket = search.get("bracket") or [None, None]
    start = search.get("start") or {}
    return (f"<p><b>{esc(answer_line(summary))}</b></p>"
            f"<p class=\"sub\">bracket [{_fmt(bracket[0], 'g')}, {_fmt(bracket[1], 'g')}]; start "
            f"{_fmt(start.get('start'), '.3g')} ({esc(start.get('rule', ''))}, X_max {_fmt(start.get('x_max_req_per_s'))}"
            f" req/s, W0 {_fmt(start.get('w0_s'))} s); intervals are always-valid 95 % (violation share, or the "
            f"mean in s); stopped: {esc(search.get('stopped', ''))}</p>"
            "<table><tr><th>point</th><th>load</th><th>role</th><th>verdict</th><th>SLO intervals</th>"
            "<th>warm-up cut</th><th>ended</th><th>s</th></tr>" + "".join(rows) + "</table>")
