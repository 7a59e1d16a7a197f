"""Exact percentiles of large samples without sorting them: numpy's default ('linear', Hyndman &
Fan type 7) computed from order statistics found by counting.

For n values and a percentile q, the virtual index is g = (n − 1)·(q/100); the result interpolates between the order
statistics x(⌊g⌋) and x(⌊g⌋ + 1) with weight γ = g − ⌊g⌋, as a + (b − a)·γ, or b − (b − a)·(1 − γ)
when γ ≥ 0.5. The same formula and evaluation order as numpy, so the result equals
`np.percentile(values, q)` to the bit (tests/test_quantiles.py checks it).

Finding the order statistics (`select`): the values are non-negative float64 here (latencies),
whose bit patterns, read as integers, sort like the values. One pass buckets the patterns by their
high bits (a bucket spans a relative width of about 1/4096 of a value), a histogram gives each
wanted rank's bucket, and only the values of those few buckets are sorted. Cost: a handful of
linear passes instead of numpy's partition; arrays with negative values or one crowded bucket
fall back to `np.partition`.

Non-negative integers (chunk gaps in ns) are bucketed linearly instead (`select_int`): one shift
pass, with the bucket width set from a strided sample's 99.9th percentile so the bulk of the values
spreads over the buckets and the rare long ones share one overflow bucket. The order statistics
are the same integers whichever way they are found; dividing them by the unit afterwards gives
the same float64 as dividing every value first.
"""

from __future__ import annotations

import numpy as np

from profiler.scratch import scratch

SELECT_MIN = 1 << 20  # below this size np.percentile is as fast
MAX_BUCKETS = 1 << 16  # a histogram this size stays in the cache


def percentiles(values: np.ndarray, qs: list[float], zeros_to_drop: int = 0, unit: float = 1.0) -> np.ndarray:
    """np.percentile(values / unit, qs) for a 1-D float64 array without NaN or a non-negative int64
    array; with `zeros_to_drop` = k, of the sample without k of its zeros (placeholders the caller
    left in; they are its smallest values, so dropping them shifts every rank by k)."""
    integer = np.asarray(values).dtype.kind in "iu"
    v = np.asarray(values, dtype=np.int64 if integer else np.float64)
    if v.size - zeros_to_drop < SELECT_MIN:
        if zeros_to_drop:
            v = np.sort(v)[zeros_to_drop:]
        return np.percentile(v / unit if integer or unit != 1.0 else v, qs)
    n = v.size - zeros_to_drop
    q = np.true_divide(np.asarray(qs, dtype=np.float64), 100)
    g = (n - 1) * q
    lo = np.floor(g)
    gamma = g - lo
    lo_i = lo.astype(np.int64)
    hi_i = np.minimum(lo_i + 1, n - 1)
    lo_i = np.where(g >= n - 1, n - 1, lo_i)
    ranks = np.unique(np.r_[lo_i, hi_i])
    picked = select_int(v, ranks + zeros_to_drop) if integer else select(v, ranks + zeros_to_drop)
    if integer or unit != 1.0:
        picked = picked / unit
    found = dict(zip(ranks.tolist(), picked.tolist(), strict=True))
    a = np.array([found[i] for i in lo_i.tolist()])
    b = np.array([found[i] for i in hi_i.tolist()])
    diff = b - a
    out = a + diff * gamma
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), out)


def select(v: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The order statistics of `v` at `ranks` (0-based, sorted, unique): exact."""
    vmin, vmax = float(v.min()), float(v.max())
    if not vmin >= 0.0:  # negative values (or NaN) do not sort by their bit patterns
        return np.partition(v.copy(), ranks)[ranks]
    bucket, counts = _buckets(v, vmax)
    return _pick(v, bucket, counts, ranks)


def select_int(v: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The order statistics of the non-negative int64 `v` at `ranks` (0-based, sorted, unique): exact."""
    sample = v[::max(1, v.size // 65536)]
    if sample.min() < 0:
        return np.partition(v.copy(), ranks)[ranks]
    top = 2 * int(np.percentile(sample, 99.9)) + 1
    bucket = scratch("quantile-buckets", v.size, np.int64)
    np.right_shift(v, max(0, top.bit_length() - MAX_BUCKETS.bit_length() + 1), out=bucket)
    np.minimum(bucket, MAX_BUCKETS, out=bucket)  # the overflow bucket: values far above the sample's bulk
    try:
        counts = np.bincount(bucket, minlength=MAX_BUCKETS + 1)
    except ValueError:  # a negative value the sample missed
        return np.partition(v.copy(), ranks)[ranks]
    return _pick(v, bucket, counts, ranks)


def _pick(v: np.ndarray, bucket: np.ndarray, counts: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values at `ranks` from each value's bucket (buckets ordered as the values) and the counts."""
    ends = np.cumsum(counts)  # ends[j] = values in buckets 0..j
    rank_bucket = np.searchsorted(ends, ranks, side="right")
    wanted = np.unique(rank_bucket)
    if counts[wanted].sum() > v.size // 4:
        return np.partition(v.copy(), ranks)[ranks]
    table = np.zeros(counts.size, dtype=bool)
    table[wanted] = True
    inside = np.sort(v[table[bucket]])  # the wanted buckets' values, bucket after bucket
    before = ends[wanted] - counts[wanted]  # values below each wanted bucket
    start = np.cumsum(np.r_[0, counts[wanted][:-1]])  # where each wanted bucket begins in `inside`
    k = np.searchsorted(wanted, rank_bucket)
    return inside[ranks - before[k] + start[k]]


def _buckets(v: np.ndarray, vmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Bucket of each value (0 for zeros; positives by the high bits of their patterns, above the
    smallest positive one) and the count of each bucket. The buckets live in a scratch array
    (profiler.scratch): the caller uses them before the next call."""
    bits = v.view(np.int64)
    smallest = float(np.min(v, where=v > 0, initial=np.inf))
    if smallest == np.inf:  # all zeros
        return np.zeros(v.size, np.int64), np.array([v.size])
    lo = int(np.float64(smallest).view(np.int64))
    shift = max(0, (int(np.float64(vmax).view(np.int64)) - lo).bit_length() - MAX_BUCKETS.bit_length() + 1)
    bucket = scratch("quantile-buckets", v.size, np.int64)
    np.subtract(bits, lo, out=bucket)
    np.right_shift(bucket, shift, out=bucket)
    np.maximum(bucket, -1, out=bucket)  # zeros lie below the smallest positive value
    bucket += 1
    return bucket, np.bincount(bucket)
