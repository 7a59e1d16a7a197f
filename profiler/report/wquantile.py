"""Statistics of bootstrap resamples given as a count per unit, without expanding the resamples.

A resample of `compare`'s bootstrap is a count per unit (request): how often the unit was drawn.
It stands for the sample that holds every value of unit g counts[g] times. Its numpy-'linear'
percentile needs the k-th smallest value of that sample: with all values sorted (pooled over the
units) and `groups` giving each value's unit, that is the first position whose running sum of
weights exceeds k, the weight of a position being its unit's count.

The running sum over all N positions costs B × N per statistic (B resamples, e.g. 2,000 × 510,000
chunk gaps). Only the positions near the statistic's rank matter. Before a position `lo` the
running sum is counts @ (values of each unit among the first `lo` positions), one B × G product
(G units); inside a band [lo, hi) it is a cumulative sum over the band alone. A resample whose rank
falls outside the band is redone with a band four times as wide, up to the whole sample, so the
result equals the full running sum's exactly (tests/test_report_stats.py). Cost: about
B × (G + band) instead of B × N; the band needed is set by the resamples' spread of the rank, a
small fraction of N.
"""

from __future__ import annotations

import numpy as np

from profiler.metrics import PERCENTILES

FIRST_HALF_BAND = 256  # positions either side of the pooled rank in the first try
_CELLS = 20_000_000  # rows × band per step: bounds the temporaries (float64: 160 MB)


def grouped_stat(sorted_values: np.ndarray, groups: np.ndarray, counts: np.ndarray, stat: str) -> np.ndarray:
    """`stat` ('mean' or a key of PERCENTILES) of each row's resample: value i appears
    counts[row, groups[i]] times. `sorted_values` ascending, no NaN; `groups` in [0, counts.shape[1])."""
    counts = np.asarray(counts, np.float64)  # whole numbers: exact in float64, and BLAS for the products
    groups = np.asarray(groups, np.int64)
    sizes = np.bincount(groups, minlength=counts.shape[1]).astype(np.float64)
    n_tot = counts @ sizes
    if stat == "mean":
        sums = np.bincount(groups, weights=sorted_values, minlength=counts.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return (counts @ sums) / n_tot
    q = PERCENTILES[stat] / 100.0
    h = (n_tot - 1) * q
    j0 = np.floor(h)
    j1 = np.minimum(j0 + 1, n_tot - 1)
    i0 = np.zeros(n_tot.size, np.int64)
    i1 = np.zeros(n_tot.size, np.int64)
    todo = np.flatnonzero(n_tot > 0)
    n = sorted_values.size
    half = FIRST_HALF_BAND
    while todo.size:
        centre = int(q * (n - 1))
        lo, hi = max(0, centre - half), min(n, centre + half + 1)
        ok = _ranks_in_band(groups, counts, todo, j0, j1, lo, hi, i0, i1)
        todo = todo[~ok]
        half *= 4
    last = n - 1
    x0, x1 = sorted_values[np.minimum(i0, last)], sorted_values[np.minimum(i1, last)]
    out = x0 + (h - j0) * (x1 - x0)
    return np.where(n_tot > 0, out, np.nan)


def _ranks_in_band(groups: np.ndarray, counts: np.ndarray, rows: np.ndarray, j0: np.ndarray, j1: np.ndarray,
                   lo: int, hi: int, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
    """For `rows`, the positions of ranks j0 and j1 when both lie in [lo, hi) (written to i0, i1);
    returns which rows they did. Exact: every position before `lo` has a running sum <= j0 and every
    position from `hi` on one > j1, checked per row."""
    band_units = groups[lo:hi]
    before = counts @ np.bincount(groups[:lo], minlength=counts.shape[1]).astype(np.float64)
    ok = np.zeros(rows.size, bool)
    step = max(1, _CELLS // max(1, hi - lo))
    for s in range(0, rows.size, step):
        r = rows[s:s + step]
        if r[-1] - r[0] + 1 == r.size:  # consecutive rows: a slice, then the band's columns
            c = np.cumsum(counts[r[0]:r[-1] + 1, band_units], axis=1)
        else:
            c = np.cumsum(counts[np.ix_(r, band_units)], axis=1)
        a, b = j0[r] - before[r], j1[r] - before[r]  # the ranks counted from lo
        ok[s:s + step] = (a >= 0) & (c[:, -1] > b)
        i0[r] = lo + (c <= a[:, None]).sum(axis=1)
        i1[r] = lo + (c <= b[:, None]).sum(axis=1)
    return ok
