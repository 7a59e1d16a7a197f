"""The `--find` flags of `inferprof sweep` and how the answer is printed (profiler/capacity.py runs it)."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from profiler.capacity import CapacitySpec, GridPlan, SearchPlan, check_spec, read_search
from profiler.errors import UserError
from profiler.spec import SweepSpec, parse_duration


def add_search_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("capacity search (--find)")
    g.add_argument("--find", choices=["max-goodput", "max-throughput"],
                   help="search for the highest load that meets --slo (README: Capacity search)")
    g.add_argument("--find-over", default="concurrency", choices=["concurrency", "rate"],
                   help="what the search varies (default concurrency)")
    g.add_argument("--range", dest="find_range", default="", help="LO,HI of the search (default 1,256; rate 0.5,100)")
    g.add_argument("--tolerance", default="5%", help="stop when the bracket is this narrow (default 5%%; concurrency: also 1)")
    g.add_argument("--converge", default=None,
                   help="a point may end once decided and its output tok/s is known within this (default 10%%); "
                        "on a fixed grid this turns the early end on")
    g.add_argument("--min-duration", default="5s", help="a point never ends earlier (default 5s)")
    g.add_argument("--max-duration", default="300s", help="a point ends by then, decided or not (default 300s)")
    g.add_argument("--max-probes", type=int, default=15, help="at most this many search probes (default 15)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure the grid N times (rounds, fresh prompts); points.csv gets mean and 95%% CI per load")


def parse_share(text: str, flag: str) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UserError(f"invalid {flag} {text!r}: use e.g. 5%") from None
    if not 0 < v < 1:
        raise UserError(f"invalid {flag} {text!r}: must be between 0 and 100%")
    return v


def _range(a, over: str) -> tuple[float, float]:
    text = a.find_range or ("1,256" if over == "concurrency" else "0.5,100")
    parts = text.split(",")
    try:
        lo, hi = (float(x) for x in parts)
    except ValueError:
        raise UserError(f"invalid --range {text!r}: use LO,HI, e.g. 1,256") from None
    if over == "concurrency" and (lo != int(lo) or hi != int(hi)):
        raise UserError(f"invalid --range {text!r}: concurrency takes whole numbers")
    return lo, hi


def plan_from_args(a, spec: SweepSpec) -> tuple[SweepSpec, SearchPlan | None]:
    """The search plan and the spec it runs with (None: a plain sweep)."""
    if a.repeat < 1:
        raise UserError("--repeat must be at least 1")
    if not a.find:
        if a.repeat > 1:  # rounds of the whole grid: drift spreads over every load alike
            spec = replace(spec, loads=list(spec.loads) * a.repeat, repeat=a.repeat)
        return _grid(a, spec)
    if a.repeat > 1:
        raise UserError("--repeat is for fixed grids; a search decides each probe by its own interval")
    if a.concurrency or a.rate:
        raise UserError("--find chooses the loads itself: drop --concurrency/--rate (use --range)")
    if a.duration:
        raise UserError("--find ends each point itself: use --max-duration instead of --duration")
    lo, hi = _range(a, a.find_over)
    cap = _cap(a, a.find, a.find_over, lo, hi)
    check_spec(cap, spec.slos)
    loads = [int(lo), int(hi)] if a.find_over == "concurrency" else [lo, hi]
    return replace(spec, mode=a.find_over, loads=loads), SearchPlan(cap, spec.slos)


def plan_for_resume(resume) -> SearchPlan | None:
    """The plan of a resumed run: its --find or --converge flags read back from the manifest's
    config, set to go on after the finished points (None: a plain grid)."""
    config = resume.manifest.get("config") or {}
    if not (config.get("find") or config.get("converge")):
        return None
    from profiler.sweepconfig import config_namespace

    a = config_namespace(config)
    a.repeat = 1  # the manifest's spec already holds the repeated grid
    _, plan = plan_from_args(a, resume.spec)
    plan.resume_at(resume.run_dir, resume.next_point)
    return plan


def _grid(a, spec: SweepSpec) -> tuple[SweepSpec, GridPlan | None]:
    """A fixed grid with --converge: each point ends once decided (same rules as a probe)."""
    if a.converge is None:
        return spec, None
    if a.duration:
        raise UserError("--converge ends each point itself: use --max-duration instead of --duration")
    loads = list(spec.loads)
    cap = _cap(a, "grid", spec.mode, min(loads), max(loads))
    return spec, GridPlan(cap, spec.slos, loads=tuple(loads))


def _cap(a, find: str, over: str, lo: float, hi: float) -> CapacitySpec:
    cap = CapacitySpec(find=find, over=over, lo=lo, hi=hi, tolerance=parse_share(a.tolerance, "--tolerance"),
                       converge=parse_share(a.converge or "10%", "--converge"),
                       min_duration_s=parse_duration(a.min_duration), max_duration_s=parse_duration(a.max_duration),
                       max_requests=a.requests or 5000, max_probes=a.max_probes)
    if not 0 <= cap.min_duration_s < cap.max_duration_s:
        raise UserError("--min-duration must be below --max-duration")
    if cap.max_probes < 1:
        raise UserError("--max-probes must be at least 1")
    return cap


def search_summary(run_dir: Path, points: pd.DataFrame) -> dict | None:
    """`search` of `--json`: found_load, found_point, verdict, gpu_seconds, probes (+ the found figures)."""
    s = read_search(run_dir)
    if s is None:
        return None
    out = {k: s.get(k) for k in ("found_load", "found_point", "verdict", "gpu_seconds", "stopped", "bracket")}
    out["probes"] = [{k: p.get(k) for k in ("point", "load", "role", "verdict", "ended", "seconds", "n")}
                     for p in s.get("probes", [])]
    row = found_row(points, s)
    if row is not None:
        for col in ("goodput_req_per_s", "goodput_tok_per_s", "output_tok_per_s", "usd_per_1m_output"):
            if col in row.index:
                out[col] = _clean(row[col])
    return out


def restrict_to_found(run_dir, points: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """`cost` and `size` of a search run: only the found point (all points when there is no search)."""
    s = read_search(run_dir)
    if s is None or "found_load" not in s:
        return points, None
    p = s.get("found_point")
    rows = points[pd.to_numeric(points["point"], errors="coerce") == int(p)] if p is not None else points.iloc[0:0]
    if not len(rows):
        return rows, "search run: no load met the SLOs, nothing to cost"
    return rows.reset_index(drop=True), (
        f"search run: using the point it found (point {s['found_point']}, load {s['found_load']:g})")


def found_row(points: pd.DataFrame, search: dict) -> pd.Series | None:
    """The points.csv row of the found point (None when nothing passed)."""
    p = search.get("found_point")
    if p is None or not len(points):
        return None
    rows = points[pd.to_numeric(points["point"], errors="coerce") == int(p)]
    return rows.iloc[0] if len(rows) else None


def answer_line(summary: dict) -> str:
    """The one line a search leads with."""
    gpu_min = (summary.get("gpu_seconds") or 0) / 60
    if summary.get("found_load") is None:
        return f"search: no load in the range met the SLOs ({summary.get('stopped')}); {gpu_min:.1f} GPU-minutes"
    parts = [f"max SLO-meeting load {summary['found_load']:g} (point {summary['found_point']})"]
    for col, label in (("goodput_tok_per_s", "goodput tok/s"), ("output_tok_per_s", "output tok/s"),
                       ("usd_per_1m_output", "$/1M output tokens")):
        v = summary.get(col)
        if v is not None:
            parts.append(f"{label} {v:,.4g}")
    parts.append(f"search took {gpu_min:.1f} GPU-minutes ({len(summary.get('probes', []))} points; "
                 f"{summary.get('stopped')})")
    return "search: " + ", ".join(parts)


def _clean(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
