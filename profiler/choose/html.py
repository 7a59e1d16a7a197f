"""The choice section that leads compare.html: the recommendation paragraph, then the evidence
(decision matrix, Pareto table, sensitivity, tests) and a Pareto plot of the first two objectives."""

from __future__ import annotations

import math

import numpy as np

from profiler.choose.decision import Decision
from profiler.choose.pareto import front

_NUM = "{:.4g}"


def fig_front(d: Decision):
    """The first two objectives, one marker per run; the front joined, dominated runs hollow."""
    from profiler.report.plots import COLORS, _figure

    if len(d.objectives) < 2:
        return None
    (nx, dx), (ny, dy) = d.objectives[:2]
    t = d.table
    xy = t[[nx, ny]].to_numpy(float)
    ok = np.isfinite(xy).all(axis=1)
    if not ok.any():
        return None
    on = front(xy, [dx, dy])
    fig = _figure()
    ax = fig.add_subplot()
    for i, (_, r) in enumerate(t.iterrows()):
        if not ok[i]:
            continue
        c = COLORS[i % len(COLORS)]
        ax.scatter([r[nx]], [r[ny]], s=60, color=c if on[i] else "none", edgecolors=c, zorder=3,
                   label=f"{r['run']}{'' if on[i] else ' (dominated)'}")
    pts = xy[on & ok]
    pts = pts[np.argsort(pts[:, 0])]
    ax.plot(pts[:, 0], pts[:, 1], linestyle="--", color="0.3", linewidth=1, label="Pareto front")
    ax.set_xlabel(f"{nx} ({dx})")
    ax.set_ylabel(f"{ny} ({dy})")
    ax.set_title("Pareto front of the first two objectives")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return _NUM.format(v) if math.isfinite(v) else ""
    return str(v)


def section(d: Decision, evidence_table, pngs: dict[str, bytes]) -> str:
    from profiler.report.html import esc, plots_section

    names = [n for n, _ in d.objectives]
    cols = ["rank", "run", "point", "why", "score", "wins_share", *names, "dominated_by"]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{esc(_cell(r[c]))}</td>" for c in cols) + "</tr>"
                   for _, r in d.table.sort_values("rank").iterrows())
    ev_cols = list(evidence_table.columns)
    ev = "".join("<tr>" + "".join(f"<td>{esc(_cell(r[c]))}</td>" for c in ev_cols) + "</tr>"
                 for _, r in evidence_table.iterrows())
    flips = "".join(f"<li>{esc(names[f.objective])}: {f.weight:.3f} → {f.at:.3f} (change {f.change:.3f}) makes "
                    f"{esc(d.table['run'].iloc[f.new_winner])} tie</li>" for f in d.flips) or "<li>none in [0, 1]</li>"
    ev_head = "".join(f"<th>{esc(c)}</th>" for c in ev_cols)
    method = ("Objectives normalised min–max over the runs compared (max: (x−min)/(max−min), min: (max−x)/(max−min); "
              "all equal → 1; missing → 0); score = Σ weight × normalised value, weights summing to 1. "
              "Sensitivity: one weight moved, the others rescaled in proportion. Wins share: Dirichlet(1,…,1) "
              "random weights (10,000 draws). Quality: McNemar exact (0/1 scores) or paired bootstrap per item "
              "on shared items, unpaired bootstrap otherwise; latency: request bootstrap.")
    return (f"<h2>Recommendation</h2><p>{esc(d.paragraph)}</p>"
            f"<h2>Decision matrix</h2><p class=sub>{esc(method)}</p>"
            f"<div class=tw><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
            f"<h3>Smallest weight changes that change the winner</h3><ul>{flips}</ul>"
            f"<h3>Winner against each other run</h3>"
            f"<div class=tw><table><thead><tr>{ev_head}</tr></thead><tbody>{ev}</tbody></table></div>"
            f"{plots_section(pngs, [('choice_front', 'Pareto front of the first two objectives')])}")
