"""The choice as files next to compare.html: decision.csv, evidence.csv, plots/choice_front.png,
and as a terminal table; compare.html gets the html section (profiler.choose.html)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from profiler.choose.decision import Decision


def evidence_frame(d: Decision) -> pd.DataFrame:
    cols = ["other", "objective", "diff", "lo", "hi", "p", "test", "verdict"]
    return pd.DataFrame([asdict(e) for e in d.evidence], columns=cols)


def decision_columns(d: Decision) -> list[tuple[str, str, str]]:
    cols = [("rank", "rank", "{}"), ("run", "run", "{}"), ("point", "pt", "{}"), ("score", "score", "{:.3f}"),
            ("wins_share", "wins", "{:.0%}")]
    cols += [(n, n, "{:.4g}") for n, _ in d.objectives]
    return cols + [("dominated_by", "dominated by", "{}")]


def write_choice(d: Decision, out: Path) -> str:
    from profiler.choose.html import fig_front, section
    from profiler.report.plots import write_figures

    d.table.to_csv(out / "decision.csv", index=False, float_format="%.6g")
    ev = evidence_frame(d)
    ev.to_csv(out / "evidence.csv", index=False, float_format="%.6g")
    written = write_figures({"choice_front": fig_front(d)}, out / "plots")
    return section(d, ev, {k: p.read_bytes() for k, p in written.items()})
