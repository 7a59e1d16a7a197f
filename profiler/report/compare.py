"""`inferprof compare`: the same points of several runs, their differences and whether they are real.

The first run is the baseline A; every other run is B in turn. Points match by (mode, load).
Intervals and verdicts are explained in `profiler.report.stats`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.report import stats as st
from profiler.report.samples import Run, load_run, run_samples

DEFAULT_METRICS = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tpot_p50", "e2e_p99", "output_tok_per_s")
DEFAULT_LEVEL = 0.95

COMPARE_COLUMNS = ["run_a", "run_b", "mode", "load", "point_a", "point_b", "metric", "a", "b", "diff",
                   "ci_lo", "ci_hi", "verdict", "note", "n_a", "n_b"]


class CompareError(ValueError):
    """Bad compare input (one line for the CLI)."""


def point_key(mode: object, load: object) -> tuple[str, float]:
    return str(mode), round(float(load), 9)


def matched_points(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, float, int, int]]:
    """(mode, load, point in A, point in B) for every (mode, load) both runs measured."""
    def index(df: pd.DataFrame) -> dict[tuple[str, float], int]:
        if not len(df) or not {"mode", "load", "point"} <= set(df.columns):
            return {}
        return {point_key(r["mode"], r["load"]): int(r["point"]) for _, r in df.iterrows()}

    ia, ib = index(a), index(b)
    return [(k[0], k[1], ia[k], ib[k]) for k in sorted(ia, key=lambda k: (k[0], k[1])) if k in ib]


@dataclass(frozen=True)
class CompareOptions:
    metrics: tuple[str, ...] = DEFAULT_METRICS
    resamples: int = st.DEFAULT_RESAMPLES
    seed: int = st.DEFAULT_SEED
    level: float = DEFAULT_LEVEL
    min_effect: float = st.DEFAULT_MIN_EFFECT


def _csv_value(points: pd.DataFrame, point: int, column: str) -> float | None:
    if column not in points.columns:
        return None
    v = pd.to_numeric(points.loc[points["point"] == point, column], errors="coerce")
    return float(v.iloc[0]) if len(v) and pd.notna(v.iloc[0]) else None


def compare_runs(runs: list[Run], opts: CompareOptions = CompareOptions()) -> pd.DataFrame:
    """One row per (other run, matched point, metric): A, B, B − A, its interval and verdict.
    CompareError when fewer than two runs or no point matches."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two run folders")
    for name in opts.metrics:
        st.parse_metric(name)
    if not 0 < opts.level < 1:
        raise CompareError("the confidence level must be between 0 and 1")
    if opts.min_effect < 0:
        raise CompareError("--min-effect must be >= 0")
    if opts.resamples < 100:
        raise CompareError("use at least 100 bootstrap resamples")
    rng = np.random.default_rng(opts.seed)
    base = runs[0]
    base_samples = run_samples(base)
    rows = []
    for other in runs[1:]:
        pairs = matched_points(base.points, other.points)
        if not pairs:
            raise CompareError(f"no point of {other.name} matches a point of {base.name} by (mode, load)")
        other_samples = run_samples(other)
        for mode, load, pa, pb in pairs:
            sa, sb = base_samples.get(pa), other_samples.get(pb)
            for metric in opts.metrics:
                col = st.metric_column(metric)
                if sa is None or sb is None:
                    ea = eb = st.Estimate(math.nan, np.full(opts.resamples, math.nan), 0)
                else:
                    ea = st.bootstrap_metric(sa, metric, opts.resamples, rng, _csv_value(base.points, pa, col))
                    eb = st.bootstrap_metric(sb, metric, opts.resamples, rng, _csv_value(other.points, pb, col))
                d = st.difference(ea, eb, opts.level, st.lower_is_better(metric),
                                  st.tail_samples_needed(metric), opts.min_effect)
                rows.append({"run_a": base.name, "run_b": other.name, "mode": mode, "load": load,
                             "point_a": pa, "point_b": pb, "metric": metric, **asdict(d),
                             "n_a": ea.n, "n_b": eb.n})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def load_runs(paths: list[str | Path]) -> list[Run]:
    runs = []
    for p in paths:
        try:
            runs.append(load_run(p))
        except ValueError as e:
            raise CompareError(str(e)) from None
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # the same folder twice, or copies: keep rows distinguishable
        for i, r in enumerate(runs):
            r.manifest = {**r.manifest, "run_id": f"{r.name}#{i + 1}"}
    return runs


# ---------------------------------------------------------------- Pareto fronts

def pareto_dominated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where another configuration is at least as good on both (lower x, lower y) and
    strictly better on one. NaN rows are never on the front (returned as dominated)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    dom = ~ok
    for i in np.flatnonzero(ok):
        better = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        dom[i] = bool(better.any())
    return dom


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col in df.columns:
        return pd.to_numeric(df[col], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def _gpus(run: Run) -> float:
    g = _num(run.points, "gpu_count")
    if g.notna().any() and g.max() > 0:
        return float(g.max())
    gpus = run.manifest.get("gpus") or []
    return float(len(gpus)) if gpus else 1.0


def configurations(runs: list[Run]) -> pd.DataFrame:
    """Every (run, point) with the Pareto axes.

    cost: $/1M output tokens when the run was priced, else GPU-seconds per 1M output tokens
    (GPUs × 1e6 ÷ output tokens/s), which orders points the same way for any fixed price.
    """
    rows = []
    for run in runs:
        p = run.points
        if not len(p):
            continue
        g = _gpus(run)
        thr = _num(p, "output_tok_per_s")
        usd = _num(p, "usd_per_1m_output")
        with np.errstate(divide="ignore", invalid="ignore"):
            gpu_s = g * 1e6 / thr.where(thr > 0)
        for i in p.index:
            rows.append({"run": run.name, "point": int(p.at[i, "point"]), "mode": p.at[i, "mode"],
                         "load": float(p.at[i, "load"]), "gpus": g,
                         "output_tok_per_s": thr.at[i], "tok_per_s_per_gpu": thr.at[i] / g,
                         "usd_per_1m_output": usd.at[i], "gpu_s_per_1m_output": gpu_s.at[i],
                         "ttft_p99_ms": _num(p, "ttft_p99_ms").at[i], "e2e_p99_ms": _num(p, "e2e_p99_ms").at[i],
                         "itl_p99_ms": _num(p, "itl_p99_ms").at[i]})
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    priced = df["usd_per_1m_output"].notna().all()
    df["cost_axis"] = "usd_per_1m_output" if priced else "gpu_s_per_1m_output"
    cost = df["usd_per_1m_output"] if priced else df["gpu_s_per_1m_output"]
    df["cost"] = cost
    df["dominated_cost_ttft"] = pareto_dominated(cost, df["ttft_p99_ms"])
    # throughput per GPU is better when HIGHER: negate it for the minimising front
    df["dominated_tput_e2e"] = pareto_dominated(-df["tok_per_s_per_gpu"], df["e2e_p99_ms"])
    return df
