"""One row per run for the decision: the point chosen for it and its objectives.

The point: `--point N` when given; else the run's best SLO-meeting point (the most goodput, i.e.
goodput_req_per_s, then output tokens/s), or, in a run without SLOs, its point of most output
tokens/s. A run with SLOs none of whose points meets them contributes its point of highest
slo_attainment, flagged `slo_met = False`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from profiler.errors import UserError
from profiler.runread import Run, flag, numeric

# objective name -> (points.csv column, better direction, label)
OBJECTIVES = {
    "quality": ("", "max", "quality (first eval dimension, mean score)"),
    "useful_rate": ("useful_rate", "max", "useful responses / eval requests"),
    "cost": ("usd_per_1m_output", "min", "$ per 1M output tokens"),
    "cost_per_useful": ("usd_per_useful_response", "min", "$ per useful response"),
    "goodput": ("goodput_req_per_s", "max", "max goodput (requests/s meeting the SLOs)"),
    "throughput": ("output_tok_per_s", "max", "output tokens/s"),
}
LATENCY = [f"{m}_{s}" for m in ("ttft", "e2e", "tpot", "itl") for s in ("mean", "p50", "p90", "p99")]
ALIASES = {"latency": "ttft_p99"}


def objective_info(name: str) -> tuple[str, str, str]:
    name = ALIASES.get(name, name)
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    if name in LATENCY:
        return f"{name}_ms", "min", f"{name.replace('_', ' ')} (ms)"
    raise UserError(f"unknown objective {name!r}; known: {', '.join([*OBJECTIVES, *LATENCY, *ALIASES])} "
                    "or a quality dimension's name")


def parse_objectives(text: str, dims: list[str]) -> list[tuple[str, str]]:
    """'quality:max,cost_per_useful:min' -> [(name, direction)]; the direction defaults to the
    objective's own. A quality dimension's name (e.g. accuracy) is an objective too."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, d = part.partition(":")
        name = ALIASES.get(name.strip(), name.strip())
        default = "max" if name in dims else objective_info(name)[1]
        d = (d.strip() or default).lower()
        if d not in ("max", "min"):
            raise UserError(f"objective {part!r}: the direction is max or min")
        out.append((name, d))
    if not out:
        raise UserError("--objectives is empty")
    return out


def parse_weights(text: str, objectives: list[str]) -> list[float]:
    """'quality=0.5,cost=0.3' -> weights in objective order (objectives not named get 0)."""
    given: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        name = ALIASES.get(name.strip(), name.strip())
        try:
            w = float(value)
        except ValueError:
            w = math.nan
        if not sep or not math.isfinite(w) or w < 0:
            raise UserError(f"invalid weight {part!r}: use NAME=NUMBER (>= 0), e.g. quality=0.5")
        if name not in objectives:
            raise UserError(f"weight {name!r} names no objective; objectives: {', '.join(objectives)}")
        given[name] = w
    if sum(given.values()) <= 0:
        raise UserError("the weights must not all be 0")
    return [given.get(o, 0.0) for o in objectives]


def dims_of(run: Run) -> list[str]:
    return [d["name"] for d in ((run.manifest.get("quality") or {}).get("dimensions") or [])]


@dataclass(frozen=True)
class Choice:
    point: int
    slo_met: bool | None  # None: the run has no SLO
    why: str


def choose_point(run: Run, point: int | None = None) -> Choice:
    p = run.points
    if not len(p):
        raise UserError(f"{run.name} has no measured point")
    if point is not None:
        if point not in set(p["point"].astype(int)):
            raise UserError(f"--point {point}: {run.name} has points {', '.join(map(str, p['point']))}")
        return Choice(point, None, "named by --point")
    tput = numeric(p, "output_tok_per_s").fillna(-1)
    if not run.manifest.get("slos"):
        return Choice(int(p.loc[tput.idxmax(), "point"]), None, "most output tokens/s (no SLO)")
    met = flag(p, "slo_met", False)
    if met.any():
        good = numeric(p, "goodput_req_per_s").fillna(-1)
        best = pd.DataFrame({"g": good, "t": tput})[met].sort_values(["g", "t"], ascending=False).index[0]
        return Choice(int(p.loc[best, "point"]), True, "best SLO-meeting point (most goodput)")
    att = numeric(p, "slo_attainment").fillna(-1)
    return Choice(int(p.loc[att.idxmax(), "point"]), False, "no point meets the SLOs: highest attainment")


def _value(run: Run, point: int, name: str) -> tuple[float, float, float]:
    """(value, lo, hi) of objective `name` at the run's point (lo/hi NaN without an interval)."""
    p = run.points
    row = p[p["point"].astype(int) == point]
    dims = dims_of(run)
    if name == "quality":
        if not dims:
            return math.nan, math.nan, math.nan
        name = dims[0]
    if name in dims or (f"{name}_mean" in p.columns):
        return tuple(float(numeric(row, f"{name}_{s}").iloc[0]) for s in ("mean", "lo", "hi"))
    if name == "goodput":
        return float(numeric(p, "goodput_req_per_s").max()), math.nan, math.nan
    col = objective_info(name)[0]
    if name == "useful_rate":
        return tuple(float(numeric(row, c).iloc[0]) for c in ("useful_rate", "useful_lo", "useful_hi"))
    value = float(numeric(row, col).iloc[0])
    if name == "cost" and not math.isfinite(value):  # unpriced: GPU-seconds order the same way
        thr = float(numeric(row, "output_tok_per_s").iloc[0])
        gpus = float(numeric(row, "gpu_count").fillna(1).iloc[0] or 1)
        value = gpus * 1e6 / thr if thr > 0 else math.nan
    return value, math.nan, math.nan


def candidate_table(runs: list[Run], objectives: list[tuple[str, str]], point: int | None = None) -> pd.DataFrame:
    """One row per run: name, point, why, slo_met and each objective with <name>_lo/_hi."""
    rows = []
    for run in runs:
        c = choose_point(run, point)
        row = {"run": run.name, "point": c.point, "why": c.why, "slo_met": c.slo_met,
               "model": (run.manifest.get("endpoint") or {}).get("model", "")}
        for name, _ in objectives:
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _value(run, c.point, name)
        rows.append(row)
    return pd.DataFrame(rows)
