"""Significance of a quality difference between two runs (fact sheet §5).

Paired, when the same items were answered by both runs:
- pass/fail scores: McNemar's exact test. b = items A got right and B wrong, c = the reverse;
  under H0 b ~ Bin(b + c, ½): p = min(1, 2·P(Bin(b + c, ½) ≤ min(b, c))). The mid-p variant
  subtracts the probability of the observed count once: p_mid = min(1, 2·P(≤ min) − P(= min)).
- other scores: a paired bootstrap of the per-item differences d_i = s_B,i − s_A,i (items
  resampled with replacement, B draws): interval = percentiles of the resampled means; two-sided
  p = share of resampled means whose distance from d̄ is at least |d̄| (the null-shifted bootstrap).
Unpaired (different items): the same bootstrap resampling each run's scores on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class QualityDiff:
    """B − A of a quality score: estimate, interval, two-sided p and the test that gave it."""

    diff: float
    lo: float
    hi: float
    p: float
    test: str
    n: int


def mcnemar(b: int, c: int) -> tuple[float, float]:
    """(exact p, mid-p) for b and c discordant pairs."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0, 1.0
    exact = min(1.0, 2.0 * float(stats.binom.cdf(k, n, 0.5)))
    mid = min(1.0, 2.0 * float(stats.binom.cdf(k, n, 0.5)) - float(stats.binom.pmf(k, n, 0.5)))
    return exact, mid


def _boot_means(x: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, x.size, size=(draws, x.size))
    return x[idx].mean(axis=1)


def _interval(est: float, means: np.ndarray, level: float) -> tuple[float, float, float]:
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    p = float(np.mean(np.abs(means - est) >= abs(est))) if est != 0 else 1.0
    return float(lo), float(hi), p


def paired_bootstrap(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0,
                     level: float = 0.95) -> QualityDiff:
    d = np.asarray(b, float) - np.asarray(a, float)
    if not d.size:
        return QualityDiff(math.nan, math.nan, math.nan, math.nan, "paired bootstrap", 0)
    est = float(d.mean())
    lo, hi, p = _interval(est, _boot_means(d, draws, np.random.default_rng(seed)), level)
    return QualityDiff(est, lo, hi, p, "paired bootstrap", int(d.size))


def unpaired_bootstrap(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0,
                       level: float = 0.95) -> QualityDiff:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not a.size or not b.size:
        return QualityDiff(math.nan, math.nan, math.nan, math.nan, "unpaired bootstrap", 0)
    rng = np.random.default_rng(seed)
    est = float(b.mean() - a.mean())
    lo, hi, p = _interval(est, _boot_means(b, draws, rng) - _boot_means(a, draws, rng), level)
    return QualityDiff(est, lo, hi, p, "unpaired bootstrap", int(min(a.size, b.size)))


def paired_binary(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0,
                  level: float = 0.95) -> QualityDiff:
    """McNemar's p with the paired bootstrap's interval for B − A on 0/1 scores."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    boot = paired_bootstrap(a, b, draws, seed, level)
    exact, _ = mcnemar(int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()))
    return QualityDiff(boot.diff, boot.lo, boot.hi, exact, "McNemar exact", boot.n)


def compare_scores(a: dict, b: dict, draws: int = 10000, seed: int = 0, level: float = 0.95) -> QualityDiff:
    """B − A for two {item: score} maps: paired on the shared items when at least 10 are shared
    (McNemar when every score is 0 or 1), unpaired on all scores otherwise."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 10:
        xa = np.array([a[i] for i in shared], float)
        xb = np.array([b[i] for i in shared], float)
        if np.isin(xa, (0, 1)).all() and np.isin(xb, (0, 1)).all():
            return paired_binary(xa, xb, draws, seed, level)
        return paired_bootstrap(xa, xb, draws, seed, level)
    return unpaired_bootstrap(np.array(list(a.values()), float), np.array(list(b.values()), float),
                              draws, seed, level)
