"""An always-valid sequential test for a difference in means: the Gaussian-mixture mSPRT
(Robbins 1970; Johari, Pekelis & Walsh, "Always valid inference", Oper. Res. 70(3) 2022).

z_1, z_2, … are differences A − B (paired: the same request sent to both), mean θ, variance σ².
With a N(0, τ²) mixture over θ under the alternative and τ² = ρ²σ²:

    Λ_n = (1 + nρ²)^(−½) · exp(n²ρ² z̄_n² / (2σ²(1 + nρ²)))

H0 θ = 0 is rejected the first time Λ_n ≥ 1/α; by Ville's inequality P(ever reject | H0) ≤ α
however often one looks. Its dual is the confidence sequence
z̄_n ± √(σ²(1 + nρ²)/(n²ρ²) · ln((1 + nρ²)/α²)), and the always-valid p-value is min_{m≤n} 1/Λ_m.
ρ² is tuned to a horizon of M observations (mixtureSPRT calcTau, in σ units):
b = 2 ln(1/α)/√M, ρ² = Φ(−b)/(φ(b)/b − Φ(−b)).

σ² is not known for latencies: the running sample variance of z_1..z_n stands in for it (the
asymptotic confidence sequence of Waudby-Smith et al. 2024, valid as n grows), and no decision is
taken before `min_n` observations. Stops: "decided" (Λ ≥ 1/α), "smaller than min_effect" (the
confidence sequence lies inside ±min_effect), or "budget" (max_n spent, undecided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

DECIDED, EQUIVALENT, BUDGET, RUNNING = "decided", "smaller than min_effect", "budget", "running"


@dataclass(frozen=True)
class SeqConfig:
    alpha: float = 0.05
    horizon: int = 1000  # M, the number of differences ρ² is tuned for (the budget, usually)
    min_effect: float = 0.0  # |θ| below which the arms count as the same (0: never stop for it)
    min_n: int = 40  # the running variance is unreliable before (benchmarks/ab: 4.6% → 2.9% false positives)
    max_n: int = 1000
    sigma2: float | None = None  # known variance; None = running sample variance

    @property
    def rho2(self) -> float:
        b = 2 * math.log(1 / self.alpha) / math.sqrt(self.horizon)
        return float(stats.norm.cdf(-b) / (stats.norm.pdf(b) / b - stats.norm.cdf(-b)))


@dataclass(frozen=True)
class SeqResult:
    state: str  # DECIDED, EQUIVALENT, BUDGET or RUNNING
    n: int  # differences used when it stopped (or so far)
    mean: float  # z̄_n, the estimate of A − B
    lo: float  # confidence sequence at n
    hi: float
    p: float  # always-valid p-value
    log_lr: float  # ln Λ_n


def path(z: np.ndarray, cfg: SeqConfig) -> tuple[np.ndarray, ...]:
    """(z̄_n, half-width_n, ln Λ_n) for n = 1..len(z) along the last axis (2-D: one path per row)."""
    z = np.asarray(z, float)
    n = np.arange(1, z.shape[-1] + 1, dtype=float)
    s1, s2 = np.cumsum(z, axis=-1), np.cumsum(z * z, axis=-1)
    mean = s1 / n
    if cfg.sigma2 is not None:
        var = np.full_like(mean, cfg.sigma2)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(s2 - n * mean * mean, 0.0) / np.maximum(n - 1, 1)
        var = np.where(var > 0, var, np.inf)  # no spread seen yet: no evidence either way
    r2 = cfg.rho2
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        log_lr = -0.5 * np.log1p(n * r2) + n * n * r2 * mean * mean / (2 * var * (1 + n * r2))
        half = np.sqrt(var * (1 + n * r2) / (n * n * r2) * np.log((1 + n * r2) / cfg.alpha ** 2))
    return mean, half, log_lr


def first_stop(mean: np.ndarray, half: np.ndarray, log_lr: np.ndarray, cfg: SeqConfig) -> tuple[int, str]:
    """(index, state) of the first look that stops a single path; (last, BUDGET/RUNNING) if none."""
    n = np.arange(1, mean.size + 1)
    live = n >= cfg.min_n
    hit = live & (log_lr >= math.log(1 / cfg.alpha))
    same = live & (cfg.min_effect > 0) & (mean - half > -cfg.min_effect) & (mean + half < cfg.min_effect)
    stop = np.flatnonzero(hit | same)
    if stop.size:
        i = int(stop[0])
        return i, DECIDED if hit[i] else EQUIVALENT
    last = mean.size - 1
    return last, BUDGET if mean.size >= cfg.max_n else RUNNING


def evaluate(z: np.ndarray, cfg: SeqConfig) -> SeqResult:
    """The test over the differences seen so far (at most max_n are used)."""
    z = np.asarray(z, float)[: cfg.max_n]
    if not z.size:
        return SeqResult(RUNNING, 0, math.nan, -math.inf, math.inf, 1.0, 0.0)
    mean, half, log_lr = path(z, cfg)
    i, state = first_stop(mean, half, log_lr, cfg)
    lr = np.where(np.arange(1, z.size + 1) >= cfg.min_n, log_lr, -np.inf)[: i + 1]
    p = float(min(1.0, math.exp(-np.nanmax(lr)))) if np.isfinite(np.nanmax(lr)) else 1.0
    return SeqResult(state, i + 1, float(mean[i]), float(mean[i] - half[i]), float(mean[i] + half[i]), p,
                     float(log_lr[i]))


def fixed_n(effect: float, sigma: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Differences a fixed-sample two-sided z test needs for `power` at `effect`:
    n = ((z_{1−α/2} + z_power)·σ/effect)²."""
    if not effect or not math.isfinite(effect) or not math.isfinite(sigma):
        return 0
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(math.ceil((z * sigma / abs(effect)) ** 2))


def fixed_power(effect: float, sigma: float, n: int, alpha: float = 0.05) -> float:
    """Power of the fixed-sample two-sided z test with n differences."""
    shift = abs(effect) * math.sqrt(n) / sigma
    zc = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.cdf(shift - zc) + stats.norm.cdf(-shift - zc))
