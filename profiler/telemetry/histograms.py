"""Prometheus histograms from `/metrics` text: per-point deltas and quantiles.

Typical use (server-side TTFT of one point, next to the client's):

    before = parse_histogram(text_at_start, "vllm:time_to_first_token_seconds")
    after = parse_histogram(text_at_end, "vllm:time_to_first_token_seconds")
    p50 = histogram_quantile(histogram_delta(before, after), 0.5)
    lo, hi = histogram_bounds(histogram_delta(before, after), 0.5)   # the bucket holding it
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

Histogram = dict[float, float]  # le upper bound (math.inf for "+Inf") -> cumulative count


def parse_histogram(text: str, name: str, labels: dict[str, str] | None = None) -> Histogram:
    """Cumulative bucket counts of histogram `name`, summed over every series whose labels
    include `labels` (e.g. all engines of a model).  Empty dict when the histogram is absent."""
    want = labels or {}
    out: Histogram = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != name:
            continue
        for s in fam.samples:
            if s.name != name + "_bucket" or any(s.labels.get(k) != v for k, v in want.items()):
                continue
            le = float(s.labels["le"])  # float() reads "+Inf"
            out[le] = out.get(le, 0.0) + float(s.value)
    return dict(sorted(out.items()))


def histogram_delta(before: Histogram, after: Histogram) -> Histogram:
    """Observations between two scrapes: after - before per bucket.

    A bucket missing from `before` counts as 0.  If any bucket decreased, the server restarted
    between the scrapes (counters reset), so `after` alone is the growth since the restart.
    """
    delta = {le: c - before.get(le, 0.0) for le, c in after.items()}
    if any(d < 0 for d in delta.values()):
        return dict(after)
    return delta


def _locate(hist: Histogram, q: float) -> tuple[float, float, float, float, float] | None:
    """(lower, upper, count_below, count_in_bucket_cum, rank) of the bucket holding rank q*total."""
    if not hist or not 0.0 <= q <= 1.0:
        return None
    les = sorted(hist)
    total = hist[les[-1]]
    if not total > 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = hist[le]
        if c >= rank and c > prev_c:
            lower = prev_le if (prev_le > 0 or le > 0) else le
            return lower, le, prev_c, c, rank
        prev_le, prev_c = le, c
    return None


def histogram_quantile(hist: Histogram, q: float) -> float:
    """Prometheus `histogram_quantile`: linear interpolation inside the bucket holding rank q*N.

    value = lower + (upper - lower) * (rank - count_below) / (count_at_upper - count_below),
    with lower = previous bucket's `le` (0 for the first bucket).  When the rank falls in the
    +Inf bucket the answer is the highest finite `le`, as Prometheus does.  NaN when empty.
    """
    loc = _locate(hist, q)
    if loc is None:
        return math.nan
    lower, upper, below, at, rank = loc
    if math.isinf(upper):
        finite = [le for le in hist if not math.isinf(le)]
        return max(finite) if finite else math.nan
    return lower + (upper - lower) * (rank - below) / (at - below)


def histogram_bounds(hist: Histogram, q: float) -> tuple[float, float]:
    """Edges (lower, upper] of the bucket containing the q-quantile; (nan, nan) when empty.
    `upper` is inf when it lies beyond the last finite bucket."""
    loc = _locate(hist, q)
    if loc is None:
        return math.nan, math.nan
    return loc[0], loc[1]
