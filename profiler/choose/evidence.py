"""Significance of the winner's lead over each other run, objective by objective.

Quality dimensions: per-item scores of the chosen points (scores.parquet), compared with
`profiler.choose.paired` (paired per item when both runs answered the same items). Latency
objectives: the request bootstrap of `inferprof compare` (profiler.report.stats), B − A with A the
winner. Costs, goodput and throughput are single figures per point here: no test, shown as
measured. A difference counts only when its interval excludes 0 (p < α for McNemar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from profiler.choose.candidates import LATENCY, dims_of
from profiler.choose.paired import compare_scores
from profiler.quality.scoring import SCORES, read_point_files
from profiler.report import stats as st
from profiler.report.samples import MAX_BOOTSTRAP_GAPS, MAX_BOOTSTRAP_REQUESTS, run_samples
from profiler.runread import Run

SAME = "no detectable difference"


@dataclass(frozen=True)
class Evidence:
    other: str
    objective: str
    diff: float  # other − winner
    lo: float
    hi: float
    p: float
    test: str
    verdict: str  # "winner better", "winner worse" or SAME


def item_scores(run: Run, point: int, dim: str) -> dict:
    """{item: mean score over its answers} of a point's successful eval answers."""
    s = read_point_files(run.path, SCORES, point, ["item", "dimension", "score", "request_ok"])
    if not len(s):
        return {}
    s = s[(s["dimension"] == dim) & s["request_ok"]].dropna(subset=["score"])
    return {int(k): float(v) for k, v in s.groupby("item")["score"].mean().items()}


def _verdict(lo: float, hi: float, winner_better_if_positive: bool) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 <= hi:
        return SAME
    return "winner worse" if (lo > 0) == winner_better_if_positive else "winner better"


def quality_evidence(win: Run, wp: int, other: Run, op: int, dim: str, alpha: float, seed: int) -> Evidence | None:
    a, b = item_scores(win, wp, dim), item_scores(other, op, dim)
    if not a or not b:
        return None
    q = compare_scores(a, b, seed=seed, level=1 - alpha)
    v = _verdict(q.lo, q.hi, True) if q.test != "McNemar exact" else (
        SAME if not q.p < alpha else ("winner worse" if q.diff > 0 else "winner better"))
    return Evidence(other.name, dim, q.diff, q.lo, q.hi, q.p, f"{q.test} (n={q.n})", v)


def latency_evidence(win: Run, wp: int, other: Run, op: int, metric: str, alpha: float, seed: int,
                     resamples: int = 1000, cache: dict | None = None) -> Evidence | None:
    cache = {} if cache is None else cache
    for run in (win, other):
        if run.name not in cache:  # a run's samples are read once for all its metrics
            cache[run.name] = run_samples(run, MAX_BOOTSTRAP_REQUESTS, MAX_BOOTSTRAP_GAPS)
    sa, sb = cache[win.name].get(wp), cache[other.name].get(op)
    if sa is None or sb is None:
        return None
    rng = np.random.default_rng(seed)
    ea = st.bootstrap_metric(sa, metric, resamples, rng)
    eb = st.bootstrap_metric(sb, metric, resamples, rng)
    d = st.difference(ea, eb, 1 - alpha, True, st.tail_samples_needed(metric))
    v = SAME if d.verdict != "B slower" and d.verdict != "B faster" else (
        "winner better" if d.verdict == "B slower" else "winner worse")
    return Evidence(other.name, metric, d.diff, d.ci_lo, d.ci_hi, math.nan, "request bootstrap", v)


def gather(runs: list[Run], points: dict[str, int], winner: str, objectives: list[str], alpha: float = 0.05,
           seed: int = 0) -> list[Evidence]:
    """Evidence for each tested objective, winner against every other run."""
    by = {r.name: r for r in runs}
    win = by[winner]
    out, cache = [], {}
    for other in runs:
        if other.name == winner:
            continue
        for name in objectives:
            dim = (dims_of(win) or [""])[0] if name == "quality" else name
            if dim and dim in dims_of(win) and dim in dims_of(other):
                e = quality_evidence(win, points[winner], other, points[other.name], dim, alpha, seed)
            elif name in LATENCY:
                e = latency_evidence(win, points[winner], other, points[other.name], name, alpha, seed,
                                     cache=cache)
            else:
                e = None
            if e is not None:
                out.append(e)
    return out
