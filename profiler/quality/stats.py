"""Intervals for quality figures (../shared/reference/statistics.md §5), pure functions."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927) score interval for k successes in n trials (benchmarks/quality compares its
    coverage with the exact interval's; the quality columns use `clopper_pearson`):

    centre = (p + z²/2n) / (1 + z²/n), half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), p = k/n.
    170/200 -> [0.794, 0.893]. (NaN, NaN) when n = 0.
    """
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Clopper–Pearson (1934) exact interval for k successes in n trials:

    lo = B⁻¹(α/2; k, n−k+1) (0 when k = 0), hi = B⁻¹(1−α/2; k+1, n−k) (1 when k = n), B⁻¹ the
    beta quantile. Its coverage is at least 1−α for every true rate and every n, which Wilson's is
    not (0.936 at n = 100, rate 0.9). 5/1000 -> [0.00163, 0.01163]. (NaN, NaN) when n = 0.
    """
    if n <= 0:
        return math.nan, math.nan
    from scipy.stats import beta  # imported on use: it costs every CLI command ~0.4 s

    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def is_pass_fail(scores: np.ndarray) -> bool:
    return bool(np.isin(scores, (0.0, 1.0)).all())


def mean_interval(scores: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(mean, lo, hi) of scores in [0, 1]: Clopper–Pearson when every score is 0 or 1, otherwise the
    normal interval mean ± z·s/√n (s the sample standard deviation), clipped to [0, 1]."""
    s = np.asarray(scores, dtype=float)
    s = s[~np.isnan(s)]
    n = s.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(s.mean())
    if is_pass_fail(s):
        lo, hi = clopper_pearson(int(s.sum()), n)
        return mean, lo, hi
    half = z * float(s.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return mean, max(0.0, mean - half), min(1.0, mean + half)
