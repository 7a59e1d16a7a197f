"""The cross-cell comparison: per cell and per SLO, the highest goodput and what a token cost.

For each finished cell (a run folder) and each named SLO set, every point's goodput is recomputed
from the raw requests against that SLO set (profiler.summary.slo_verdict, the same rule as the
sweep's own goodput columns), so one matrix can be judged against several SLOs without re-running.
Columns per (cell, SLO):
- max_goodput_tok_per_s: the largest goodput_tok_per_s over the cell's points, and the load of
  that point (goodput_load);
- usd_per_1m_output: $ per 1M output tokens at that point (points.csv; empty when the run was not
  priced), and min_usd_per_1m_output_meeting_slo: the cheapest point whose p-quantiles meet the SLO;
- cold_start_s of the cell's server.
The best cell per SLO has the highest max_goodput_tok_per_s; ties go to the lower $ per 1M.
Without any SLO the ranking is by peak output tokens/s (SLO name "none").
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from profiler import runfolder as rf
from profiler.runread import point_rows, warmup_of
from profiler.slo import parse_slos
from profiler.summary import summarize_point

COLUMNS = ["slo", "cell", "status", "max_goodput_tok_per_s", "goodput_load", "usd_per_1m_output",
           "min_usd_per_1m_output_meeting_slo", "points_meeting_slo", "peak_output_tok_per_s", "cold_start_s",
           "best"]


def slo_sets(spec_slos: dict[str, str] | None, sweep: dict) -> dict[str, dict[str, float]]:
    """Named SLO sets: the matrix's `slos`, else the sweep's `slo` (named by its text), else none."""
    if spec_slos:
        return {name: parse_slos(text) for name, text in spec_slos.items()}
    text = sweep.get("slo")
    if isinstance(text, dict):
        text = ",".join(f"{k}={v}" for k, v in text.items())
    if isinstance(text, list):
        text = ",".join(map(str, text))
    return {str(text): parse_slos(str(text))} if text else {"none": {}}


def _points_under(run_dir: Path, slos: dict[str, float]) -> pd.DataFrame:
    manifest = rf.read_json(run_dir / rf.MANIFEST)
    warmup = warmup_of(manifest)  # None: MSER-5, as the sweep summarized it
    rows = [summarize_point(f, r, c, slos, warmup) for f, r, c in point_rows(run_dir, rf.read_point_facts(run_dir))]
    return pd.DataFrame(rows)


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(float("nan"), index=df.index)


def cell_row(slo_name: str, slos: dict, cell_id: str, rec: dict, cold: float | None) -> dict:
    row = {"slo": slo_name, "cell": cell_id, "status": rec.get("status"), "cold_start_s": cold}
    run_dir = rec.get("run_dir")
    if rec.get("status") != "ok" or not run_dir or not (Path(run_dir) / rf.MANIFEST).exists():
        return row
    pts = _points_under(Path(run_dir), slos)
    csv = pd.read_csv(Path(run_dir) / "points.csv") if (Path(run_dir) / "points.csv").exists() else pd.DataFrame()
    usd = _num(csv, "usd_per_1m_output").reindex(range(len(pts))) if len(csv) else None
    thr = _num(pts, "output_tok_per_s")
    good = _num(pts, "goodput_tok_per_s") if slos else thr
    row["peak_output_tok_per_s"] = float(thr.max()) if len(thr) else None
    if good.notna().any():
        i = int(good.idxmax())
        row.update(max_goodput_tok_per_s=float(good[i]), goodput_load=float(pts.at[i, "load"]))
        row["usd_per_1m_output"] = _clean(usd[i]) if usd is not None else None
    met = pts["slo_met"].astype(str) == "True" if slos and "slo_met" in pts else pd.Series(True, index=pts.index)
    row["points_meeting_slo"] = int(met.sum())
    if usd is not None and (usd[met.values].notna()).any():
        row["min_usd_per_1m_output_meeting_slo"] = float(usd[met.values].min())
    return row


def _clean(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def comparison(state: dict, slos_by_name: dict[str, dict]) -> pd.DataFrame:
    """One row per (SLO set, cell), with `best` marking the best cell of each SLO set."""
    rows = []
    for name, slos in slos_by_name.items():
        for cid, rec in state["cells"].items():
            cold = (state["servers"].get(rec.get("server")) or {}).get("cold_start_s")
            rows.append(cell_row(name, slos, cid, rec, cold))
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    df["best"] = False
    for _, grp in df.groupby("slo", sort=False):
        ok = grp[pd.to_numeric(grp["max_goodput_tok_per_s"], errors="coerce") > 0]
        if len(ok):
            key = ok.assign(_c=pd.to_numeric(ok["usd_per_1m_output"], errors="coerce").fillna(math.inf))
            best = key.sort_values(["max_goodput_tok_per_s", "_c"], ascending=[False, True]).index[0]
            df.loc[best, "best"] = True
    return df


def best_cells(df: pd.DataFrame) -> dict[str, str | None]:
    """SLO set name -> best cell id (None when no cell had goodput under it)."""
    out: dict[str, str | None] = {}
    for name, grp in df.groupby("slo", sort=False):
        hit = grp[grp["best"]]
        out[str(name)] = str(hit["cell"].iloc[0]) if len(hit) else None
    return out
