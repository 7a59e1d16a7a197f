"""Does a point meet its SLOs, and how sure are we? Pure functions over per-request values.

A percentile SLO `<metric>_pNN ≤ L` holds when the share p of requests whose value exceeds L is
at most p0 = 1 − NN/100 (p99 → 1 %). The evidence is the count x of violations among n decided
requests: a failed request is a violation, a request without a value (one output token has no
TPOT) is left out. Because a probe is checked again and again while it runs (and stopped as soon
as it is decided), a fixed-n interval would be wrong: Clopper–Pearson re-checked every 100
requests passes a true 1 % violator 25 % of the time. The interval is therefore Robbins'
beta-binomial mixture confidence sequence (Robbins 1970; Howard et al. 2021, Ann. Stat. 49(2)),
valid at every n at once by Ville's inequality:

    m_n(p) = [B(a + x, b + n − x) / B(a, b)] / [p^x (1 − p)^(n − x)],  C_n = {p : m_n(p) < 1/α}

with a = 1/2, a + b = 1/p0. PASS when C_n lies below p0, FAIL when above it, else UNRESOLVED.
With α = 0.05 and p0 = 1 % a probe without violations passes at n = 376 (a one-shot
Clopper–Pearson bound would say 299, but only if looked at once).

A mean SLO holds when the mean (successful requests) is ≤ L: the interval is the batch-means t
interval (`profiler.steady.mean_ci`); PASS when its upper end is ≤ L, FAIL when its lower end is
above L. That interval is only asymptotically valid under repeated looks (Chow–Robbins 1965), so a
minimum sample is required before it decides.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from profiler.steady import mean_ci

PASS, FAIL, UNRESOLVED = "pass", "fail", "unresolved"
ALPHA = 0.05
MIN_MEAN_SAMPLES = 50  # a t interval on fewer batch means is not trusted to decide


@dataclass(frozen=True)
class SloVerdict:
    """One SLO at one point: the verdict and the interval it rests on."""

    name: str
    verdict: str  # PASS | FAIL | UNRESOLVED
    statistic: str  # "violation share" | "mean"
    estimate: float  # share of violations, or the mean (s)
    lo: float
    hi: float
    target: float  # p0, or the limit (s)
    n: int
    violations: int = 0

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def share_target(stat: str) -> float:
    """'p99' -> 0.01, 'p999' -> 0.001, 'p50' -> 0.5: the largest share of requests allowed over the limit."""
    digits = stat[1:]
    q = float(digits) / 10 ** (len(digits) - 2) if len(digits) > 2 else float(digits)
    return round(1.0 - q / 100.0, 10)


def _betaln(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(x: int, n: int, p: float, p0: float) -> float:
    """ln m_n(p) of the beta-binomial mixture with prior Beta(1/2, 1/p0 − 1/2)."""
    a = 0.5
    b = 1.0 / p0 - a
    loglik = (x * math.log(p) if x else 0.0) + ((n - x) * math.log1p(-p) if n - x else 0.0)
    return _betaln(a + x, b + n - x) - _betaln(a, b) - loglik


def share_interval(x: int, n: int, p0: float, alpha: float = ALPHA) -> tuple[float, float]:
    """The always-valid interval C_n = {p : m_n(p) < 1/α} for the violation share (x of n)."""
    if n <= 0:
        return 0.0, 1.0
    level = math.log(1.0 / alpha)
    centre = min(max(x / n, 1e-12), 1 - 1e-12)
    if log_mixture(x, n, centre, p0) >= level:  # cannot happen for a proper prior; be safe
        return centre, centre

    def f(p: float) -> float:
        return log_mixture(x, n, p, p0) - level

    from scipy.optimize import brentq  # imported on use: scipy.optimize costs every CLI command ~0.3 s

    eps = 1e-15
    lo = 0.0 if f(eps) < 0 else brentq(f, eps, centre)
    hi = 1.0 if f(1 - eps) < 0 else brentq(f, centre, 1 - eps)
    return lo, hi


def count_violations(values_s: np.ndarray, failed: np.ndarray, limit_s: float) -> tuple[int, int]:
    """(violations, decided requests): failed requests are violations; NaN values are undecided."""
    values = np.asarray(values_s, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    ok = ~failed
    decided = ok & ~np.isnan(values)
    over = decided & (values > limit_s)
    return int(failed.sum() + over.sum()), int(failed.sum() + decided.sum())


def share_verdict(name: str, x: int, n: int, p0: float, alpha: float = ALPHA) -> SloVerdict:
    lo, hi = share_interval(x, n, p0, alpha)
    verdict = PASS if hi < p0 else FAIL if lo > p0 else UNRESOLVED
    return SloVerdict(name, verdict, "violation share", x / n if n else math.nan, lo, hi, p0, n, x)


def mean_verdict(name: str, values_s: np.ndarray, limit_s: float, alpha: float = ALPHA) -> SloVerdict:
    v = np.asarray(values_s, dtype=float)
    v = v[~np.isnan(v)]
    mean, hw = mean_ci(v, alpha)
    lo, hi = mean - hw, mean + hw
    if v.size < MIN_MEAN_SAMPLES or not math.isfinite(hw):
        verdict = UNRESOLVED
    else:
        verdict = PASS if hi <= limit_s else FAIL if lo > limit_s else UNRESOLVED
    return SloVerdict(name, verdict, "mean", mean, lo, hi, limit_s, int(v.size))


def slo_verdict(name: str, stat: str, limit_s: float, values_s: np.ndarray, failed: np.ndarray,
                alpha: float = ALPHA) -> SloVerdict:
    """The verdict of one SLO (`stat`: 'mean' or 'pNN') from each request's value and failure."""
    if stat == "mean":
        values = np.asarray(values_s, dtype=float)[~np.asarray(failed, dtype=bool)]
        return mean_verdict(name, values, limit_s, alpha)
    x, n = count_violations(values_s, failed, limit_s)
    return share_verdict(name, x, n, share_target(stat), alpha)


def combine(verdicts: list[SloVerdict]) -> str:
    """A point fails when one SLO fails, passes when all pass, and is unresolved otherwise."""
    kinds = {v.verdict for v in verdicts}
    if FAIL in kinds:
        return FAIL
    if kinds == {PASS}:
        return PASS
    return UNRESOLVED
