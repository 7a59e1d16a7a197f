"""The report's quality section: per point, each dimension with its interval, the useful rate and
what a useful response costs (columns of profiler/quality/summary.py), and the judge's own cost."""

from __future__ import annotations

import math

import pandas as pd


def _f(v: object, spec: str) -> str:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v) if v is not None else ""
    return "" if math.isnan(x) else spec.format(x)


def _interval(row: pd.Series, mean: str, lo: str, hi: str) -> str:
    m = _f(row.get(mean), "{:.1%}")
    return f"{m} [{_f(row.get(lo), '{:.1%}')}, {_f(row.get(hi), '{:.1%}')}]" if m else ""


def quality_section(manifest: dict, points: pd.DataFrame) -> list[str]:
    """HTML pieces (empty for a run measured without an eval set)."""
    q = manifest.get("quality")
    if not q or "useful_rate" not in points.columns:
        return []
    from profiler.report.html import esc

    dims = [d["name"] for d in q.get("dimensions") or []]
    head = ["point", "load", "eval answers", "useful [95 %]"] + [f"{d} [95 %]" for d in dims] + \
        ["by category", "template spread", "$/request", "$/useful", "hosted $/useful", "e2e p50 useful / all ms"]
    rows = []
    for _, r in points.iterrows():
        cells = [_f(r.get("point"), "{:.0f}"), _f(r.get("load"), "{:g}"), _f(r.get("eval_requests"), "{:.0f}"),
                 _interval(r, "useful_rate", "useful_lo", "useful_hi")]
        cells += [_interval(r, f"{d}_mean", f"{d}_lo", f"{d}_hi") for d in dims]
        cells += ["; ".join(f"{d}: {r.get(f'{d}_by_category')}" for d in dims if isinstance(r.get(f"{d}_by_category"), str)),
                  "; ".join(f"{d}: {_f(r.get(f'{d}_template_spread'), '{:.1%}')}" for d in dims
                            if _f(r.get(f"{d}_template_spread"), "{:.1%}")),
                  _f(r.get("usd_per_request"), "{:.3g}"), _f(r.get("usd_per_useful_response"), "{:.3g}"),
                  _f(r.get("hosted_usd_per_useful_response"), "{:.3g}"),
                  f"{_f(r.get('e2e_p50_ms_useful'), '{:.0f}')} / {_f(r.get('e2e_p50_ms_eval'), '{:.0f}')}"]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    table = ("<div class=tw><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) +
             "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    scorers = ", ".join(f"{d['name']} = {d['scorer']} (useful at ≥ {d['threshold']:g})" for d in q.get("dimensions") or [])
    intro = (f"<p class=\"sub\">{esc(q.get('items', ''))} items × {esc(q.get('templates', 1))} template(s) from "
             f"{esc(q.get('eval_file', ''))}; {esc(scorers)}. $/useful = GPU cost of the steady window / useful "
             "responses in it; intervals are Clopper–Pearson (exact) for pass/fail scores.</p>")
    return ["<h2>Quality</h2>", intro, table, _judge_line(points, q)]


def _judge_line(points: pd.DataFrame, q: dict) -> str:
    if not q.get("judge_url") or "judge_input_tokens" not in points.columns:
        return ""
    from profiler.report.html import esc

    tin = pd.to_numeric(points["judge_input_tokens"], errors="coerce").sum()
    tout = pd.to_numeric(points["judge_output_tokens"], errors="coerce").sum()
    usd = pd.to_numeric(points["judge_usd"], errors="coerce")
    cost = f"${usd.sum():.4g}" if usd.notna().any() else "not priced (--judge-price)"
    return (f"<p>Judge {esc(q.get('judge_model', ''))} at {esc(q.get('judge_url', ''))}, run after each point: "
            f"{tin:.0f} input + {tout:.0f} output tokens, {esc(cost)} — not part of any point's cost.</p>")
