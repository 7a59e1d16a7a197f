"""Steady state from the data: warm-up (MSER-5), convergence (batch means) and over-saturation.

Pure functions over series in send order (one value per request) or over time bins.

- MSER-5 (White 1997; White, Cobb & Spratt 2000): batch means Z_j of 5 consecutive values,
  k = ⌊n/5⌋; for d = 0..⌊k/2⌋, MSER(d) = Σ_{j>d} (Z_j − Z̄_d)² / (k − d)²; drop the first 5·d*
  values, d* = argmin (first on ties). Fewer than 10 values: nothing is dropped.
- Batch-means interval (Schmeiser 1982; Law & Kelton): the series is cut into k ≤ 20 equal
  batches (oldest values left over are dropped) and mean ± t_{k−1, 1−α/2} · S_b / √k.
- Converged when that half-width ≤ γ/(1+γ) · |mean| for a relative error γ (`--converge`).
- Rising: Spearman's ρ of 10 batch means against their order > 0.65 with p < 0.05 (AIPerf's
  stationarity check); over-saturated when TTFT after the warm-up cut is rising and its last
  batch mean is at least 1.5× its first (the queue grows while the point runs).
"""

from __future__ import annotations

import math

import numpy as np

MSER_BATCH = 5
MAX_BATCHES = 20
TREND_BATCHES = 10
TREND_RHO = 0.65
SATURATION_GROWTH = 1.5  # last/first batch: a queue growing at a constant rate from ~0 doubles over the second half


def mser5_cut(values: np.ndarray) -> int:
    """How many leading values are warm-up (a multiple of 5)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    k = v.size // MSER_BATCH
    if k < 2:
        return 0
    z = v[: k * MSER_BATCH].reshape(k, MSER_BATCH).mean(axis=1)
    best_d, best = 0, math.inf
    for d in range(k // 2 + 1):
        tail = z[d:]
        score = float(((tail - tail.mean()) ** 2).sum() / (k - d) ** 2)
        if score < best:
            best_d, best = d, score
    return MSER_BATCH * best_d


def warmup_requests(send_ns: np.ndarray, ttft_s: np.ndarray) -> int:
    """Requests (in send order) before the steady state: those sent before the (5·d*)-th request
    with a TTFT, d* from MSER-5 on the TTFTs in send order (failed requests have none)."""
    order = np.argsort(np.asarray(send_ns), kind="stable")
    t = np.asarray(ttft_s, dtype=float)[order]
    cut = mser5_cut(t)
    return int(np.flatnonzero(~np.isnan(t))[cut]) if cut else 0


def batch_means(values: np.ndarray, batches: int) -> np.ndarray:
    """`batches` equal batch means of the newest values (the oldest left-over values are dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    size = v.size // batches if batches > 0 else 0
    if size == 0:
        return np.empty(0)
    return v[v.size - size * batches:].reshape(batches, size).mean(axis=1)


def mean_ci(values: np.ndarray, alpha: float = 0.05, batches: int = MAX_BATCHES) -> tuple[float, float]:
    """(mean, half-width) of the batch-means t interval; half-width inf with under 2 batches."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.inf
    k = min(batches, v.size)
    z = batch_means(v, k)
    if z.size < 2:
        return float(v.mean()), math.inf
    from scipy import stats as sps  # imported on use: scipy.stats costs every CLI command ~0.4 s

    hw = sps.t.ppf(1 - alpha / 2, z.size - 1) * z.std(ddof=1) / math.sqrt(z.size)
    return float(z.mean()), float(hw)


def converged(values: np.ndarray, rel: float, alpha: float = 0.05, min_batches: int = 10) -> bool:
    """True when the batch-means interval is narrower than ±rel of the mean (relative error rel)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size < min_batches:
        return False
    mean, hw = mean_ci(v, alpha)
    return math.isfinite(hw) and hw <= rel / (1 + rel) * abs(mean)


def rising(values: np.ndarray, batches: int = TREND_BATCHES, alpha: float = 0.05) -> bool:
    """A significant upward trend of the batch means (Spearman ρ > 0.65, p < α)."""
    z = batch_means(values, batches)
    if z.size < batches or np.all(z == z[0]):
        return False
    from scipy import stats as sps

    rho, p = sps.spearmanr(np.arange(z.size), z)
    return bool(rho > TREND_RHO and p < alpha)


def oversaturated(ttft_s: np.ndarray) -> bool:
    """TTFT (in send order, after the warm-up cut) still rising and its newest batch at least 1.5×
    its oldest. MSER-5 leaves at least the second half of a steadily growing series, whose newest
    batch is about twice its oldest when the queue grew from nearly empty."""
    z = batch_means(ttft_s, TREND_BATCHES)
    if z.size < TREND_BATCHES or z[0] <= 0:
        return False
    return rising(ttft_s) and z[-1] >= SATURATION_GROWTH * z[0]


def binned_rate(t_ns: np.ndarray, weights: np.ndarray, start_ns: int, stop_ns: int, bins: int) -> np.ndarray:
    """Per time bin of [start, stop): sum of weights ÷ bin length (s), e.g. output tokens/s."""
    if stop_ns <= start_ns or bins <= 0:
        return np.empty(0)
    edges = np.linspace(start_ns, stop_ns, bins + 1)
    sums, _ = np.histogram(np.asarray(t_ns, dtype=float), bins=edges, weights=np.asarray(weights, dtype=float))
    return sums / ((stop_ns - start_ns) / bins / 1e9)
