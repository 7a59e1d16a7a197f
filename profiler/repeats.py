"""`sweep --repeat N`: each load measured N times; mean and 95 % interval across the repeats.

The unit is the repeat, not the request: run-to-run variance is invisible in the spread inside one
point (statistics.md §4). Per load and headline figure: the mean of the N point values and the
Student t half-width t_{N−1, 0.975} · s / √N. Pure: a function of points.csv and the manifest.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

HEADLINE = ("output_tok_per_s", "req_per_s", "goodput_tok_per_s", "ttft_p50_ms", "ttft_p99_ms",
            "tpot_p50_ms", "tpot_p99_ms", "e2e_p50_ms", "e2e_p99_ms")


def repeat_count(manifest: dict) -> int:
    return int((manifest.get("spec") or {}).get("repeat") or 1)


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """(mean, t half-width at 95 %) of the finite values; half-width NaN under two."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 2:
        return float(v.mean()), math.nan
    from scipy import stats as sps  # imported on use: it costs every CLI command ~0.4 s

    return float(v.mean()), float(sps.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def add_repeat_columns(points: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """`repeat` (0-based, per load in point order) and `<figure>_rep_mean`, `<figure>_rep_ci95`
    (the same on every row of a load). Unchanged when the run has no repeats."""
    if repeat_count(manifest) < 2 or not len(points) or "load" not in points.columns:
        return points
    out = points.copy()
    load = pd.to_numeric(out["load"], errors="coerce")
    out["repeat"] = out.groupby(load).cumcount()
    for col in HEADLINE:
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        stats = {k: mean_ci(values[load == k].to_numpy()) for k in load.dropna().unique()}
        out[f"{col}_rep_mean"] = [stats.get(k, (math.nan, math.nan))[0] for k in load]
        out[f"{col}_rep_ci95"] = [stats.get(k, (math.nan, math.nan))[1] for k in load]
    return out
