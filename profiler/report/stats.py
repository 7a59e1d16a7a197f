"""Bootstrap confidence intervals for the difference of a point metric between two runs.

Method (what `inferprof compare` prints):
- The unit of resampling is the request. Each of the two runs' points is resampled on its own
  (the runs are independent), B times (default 2,000), with a seeded `numpy.random.Generator`.
- Latency statistics (mean, p50 … p99.9) are recomputed on every resample with the same
  definition as points.csv (numpy "linear" percentiles). Per-request metrics (TTFT, TPOT, E2E,
  per-token ITL) resample the steady-window requests; per-chunk ITL resamples requests and keeps
  all chunk gaps of each drawn request together (a cluster bootstrap: gaps of one request are
  not independent).
- Output throughput resamples requests through a ratio estimator: closed loop (Little's law)
  tokens/s ∝ Σ output tokens ÷ Σ E2E; open loop tokens/s ∝ Σ output tokens ÷ Σ inter-arrival
  gaps. The points.csv value is scaled by the resample's ratio ÷ the original ratio.
- The interval is the percentile interval of the B differences (B − A): its α/2 and 1 − α/2
  quantiles. A verdict is given only when it excludes zero.
- A resample is a count per request; its percentile is found from the sorted values without
  expanding it (`profiler.report.wquantile`, exact). On a subsampled point the metrics share one
  set of B draws (`compare` passes `shared`): each metric still has B independent resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from profiler.errors import UserError
from profiler.metrics import PERCENTILES, STATS
from profiler.report.samples import CHUNK_METRICS, REQUEST_METRICS, PointSamples
from profiler.report.wquantile import grouped_stat

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
_CELLS_PER_BATCH = 20_000_000  # bounds memory: B_batch × units float64 ≈ 160 MB


def parse_metric(name: str) -> tuple[str, str]:
    """'ttft_p99' -> ('ttft', 'p99'); 'output_tok_per_s' -> ('output_tok_per_s', ''). ValueError if unknown."""
    if name == "output_tok_per_s":
        return name, ""
    base, _, stat = name.rpartition("_")
    if base in REQUEST_METRICS + CHUNK_METRICS and stat in STATS:
        return base, stat
    known = ", ".join(f"{b}_<{'|'.join(STATS)}>" for b in REQUEST_METRICS + CHUNK_METRICS)
    raise UserError(f"unknown metric {name!r}; known: {known}, output_tok_per_s")


def metric_column(name: str) -> str:
    """points.csv column of a metric: latencies are stored in ms."""
    base, stat = parse_metric(name)
    return name if not stat else f"{base}_{stat}_ms"


def lower_is_better(name: str) -> bool:
    return parse_metric(name)[1] != ""


def resample_counts(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n) int matrix: how often each of n units is drawn in each of b resamples of size n."""
    if n == 0:
        return np.zeros((b, 0), np.int64)
    idx = rng.integers(0, n, size=(b, n))
    idx += (np.arange(b) * n)[:, None]  # row r's draws counted in bins r*n .. r*n + n - 1
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)


def _draws(n: int, b: int, rng: np.random.Generator, shared: dict | None, kind: str) -> list[np.ndarray]:
    """The B resamples of n units as count matrices (in batches). With `shared` (one dict per
    point), metrics over the same units reuse one set of draws: every metric still gets B
    independent resamples of its point, the metrics' replicates are just not independent of one
    another, which no interval here uses. Kept only while one batch holds all B (small n)."""
    key = (kind, n, b)
    if shared is not None and key in shared:
        return shared[key]
    out = [resample_counts(n, size, rng).astype(np.float64) for size in _batches(b, n)]  # for BLAS
    if shared is not None and len(out) == 1:
        shared[key] = out
    return out


def _sorted(vals: np.ndarray, groups: np.ndarray, shared: dict | None, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Values ascending with their units, computed once per point and metric. The sort need not be
    stable: tied values are equal, so whichever unit a tie lists first, a rank lands on the same value."""
    if shared is not None and ("sorted", key) in shared:
        return shared[("sorted", key)]
    order = np.argsort(vals)
    out = vals[order], groups[order]
    if shared is not None:
        shared[("sorted", key)] = out
    return out


def weighted_stat(sorted_values: np.ndarray, weights: np.ndarray, stat: str) -> np.ndarray:
    """`stat` of each row's weighted sample, equal to numpy's 'linear' percentile (or mean) of the
    sample in which value i appears weights[row, i] times. `sorted_values` ascending, no NaN."""
    sorted_values = np.asarray(sorted_values, float)
    return grouped_stat(sorted_values, np.arange(sorted_values.size), weights, stat)


def _batches(b: int, units: int):
    size = max(1, _CELLS_PER_BATCH // max(1, units))
    for start in range(0, b, size):
        yield min(size, b - start)


@dataclass(frozen=True)
class Estimate:
    """A metric of one point: its value and B bootstrap replicates (same unit as points.csv)."""

    value: float
    replicates: np.ndarray
    n: int  # resampled units (requests)
    samples: int = -1  # values the statistic is taken over (chunk gaps for ITL); -1 = n

    @property
    def size(self) -> int:
        return self.n if self.samples < 0 else self.samples


def _latency(ps: PointSamples, base: str, stat: str, b: int, rng: np.random.Generator,
             value_ms: float | None = None, shared: dict | None = None) -> Estimate:
    """Value and replicates (ms). On a subsample (`ps.subsampled`) the replicates are shifted by
    the full point's value (`value_ms`, from points.csv) minus the subsample's: their spread is
    that of the smaller sample, so the interval is wider than the full sample's, never narrower."""
    if base in CHUNK_METRICS:
        vals, groups, n = ps.itl_values, ps.itl_group, ps.itl_groups
    else:
        v = ps.per_request.get(base, np.empty(0))
        keep = ~np.isnan(v)
        vals, groups, n = v[keep], np.flatnonzero(keep), len(v)
    if vals.size == 0 or n == 0:
        return Estimate(math.nan, np.full(b, math.nan), 0)
    sv, sg = _sorted(vals, groups, shared, base)
    value = float(np.mean(vals) if stat == "mean" else np.percentile(vals, PERCENTILES[stat])) * 1e3
    kind = "itl" if base in CHUNK_METRICS else "request"
    replicates = np.concatenate([grouped_stat(sv, sg, counts, stat) * 1e3
                                 for counts in _draws(n, b, rng, shared, kind)])
    if ps.subsampled and value_ms is not None and math.isfinite(value_ms):
        replicates, value = replicates + (value_ms - value), value_ms
    return Estimate(value, replicates, n, int(vals.size))


def _throughput(ps: PointSamples, b: int, rng: np.random.Generator, value: float | None,
                shared: dict | None = None) -> Estimate:
    tok = ps.out_tokens
    denom = ps.arrival_gap_s if ps.mode == "rate" else ps.per_request.get("e2e", np.empty(0))
    keep = ~np.isnan(denom) & ~np.isnan(tok)
    tok, denom = tok[keep], denom[keep]
    if tok.size == 0 or denom.sum() <= 0:
        return Estimate(math.nan if value is None else value, np.full(b, math.nan), 0)
    ratio = tok.sum() / denom.sum()
    base = ratio if value is None or not math.isfinite(value) else value
    reps = []
    for counts in _draws(tok.size, b, rng, shared, "request"):
        with np.errstate(invalid="ignore", divide="ignore"):
            reps.append(base * ((counts @ tok) / (counts @ denom)) / ratio)
    return Estimate(float(base), np.concatenate(reps), int(tok.size))


def bootstrap_metric(ps: PointSamples, metric: str, b: int, rng: np.random.Generator,
                     value: float | None = None, shared: dict | None = None) -> Estimate:
    """Value and bootstrap replicates of `metric` for one point. `value` is the points.csv figure:
    throughput replicates are scaled around it, and a subsampled point's latency replicates are
    shifted to it. `shared`: one dict per point (and seed) lets its metrics share draws and sorts."""
    base, stat = parse_metric(metric)
    if base == "output_tok_per_s":
        return _throughput(ps, b, rng, value, shared)
    return _latency(ps, base, stat, b, rng, value, shared)


@dataclass(frozen=True)
class Difference:
    """B − A for one metric of one matched point."""

    a: float
    b: float
    diff: float
    ci_lo: float
    ci_hi: float
    verdict: str
    note: str = ""


NO_DIFFERENCE = "no significant difference"
NOT_MEASURED = "not measured"
# A percentile bootstrap of a tail quantile needs samples beyond it: with fewer than this many
# samples above p(q) the resampled quantile is mostly the sample maximum and the interval is too
# narrow (e.g. p99 of 40 requests). Such rows get an interval but no verdict.
MIN_TAIL_SAMPLES = 5
DEFAULT_MIN_EFFECT = 0.05


def tail_samples_needed(metric: str) -> int:
    """Fewest samples for a verdict on `metric` (1 for means, medians and throughput)."""
    stat = parse_metric(metric)[1]
    if stat in ("", "mean", "p50"):
        return 1
    return math.ceil(MIN_TAIL_SAMPLES / (1 - PERCENTILES[stat] / 100.0))


def verdict(lo: float, hi: float, lower_better: bool) -> str:
    """'B faster' / 'B slower' only when [lo, hi] excludes zero."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_MEASURED
    if lo > 0:
        return "B slower" if lower_better else "B faster"
    if hi < 0:
        return "B faster" if lower_better else "B slower"
    return NO_DIFFERENCE


def difference(a: Estimate, b: Estimate, level: float, lower_better: bool, min_samples: int = 1,
               min_effect: float = 0.0) -> Difference:
    """Percentile interval (level, e.g. 0.95) of the replicate differences b − a, and a verdict when
    it excludes zero, both runs have `min_samples` samples and |B − A| >= min_effect × |A|."""
    diff = b.value - a.value
    d = b.replicates - a.replicates
    d = d[np.isfinite(d)]
    if d.size == 0 or not math.isfinite(diff):
        return Difference(a.value, b.value, diff, math.nan, math.nan, NOT_MEASURED)
    alpha = 1.0 - level
    lo, hi = (float(x) for x in np.quantile(d, [alpha / 2, 1 - alpha / 2]))
    v = verdict(lo, hi, lower_better)
    note = ""
    if min(a.size, b.size) < min_samples:
        note = f"too few samples for a verdict ({min(a.size, b.size)} < {min_samples})"
    elif _below_min_effect(v, diff, a.value, min_effect):
        note = f"interval excludes 0 but |B-A| < {min_effect:.0%} of A"
    if note:
        v = NO_DIFFERENCE
    return Difference(a.value, b.value, diff, lo, hi, v, note)


def _below_min_effect(v: str, diff: float, a: float, min_effect: float) -> bool:
    """A significant difference smaller than `min_effect` × |A|: reported as no difference."""
    return v != NO_DIFFERENCE and abs(diff) < min_effect * abs(a)


def repeat_difference(a_values: np.ndarray, b_values: np.ndarray, level: float, lower_better: bool,
                      min_effect: float = 0.0) -> Difference:
    """B − A when each run measured the point several times (`sweep --repeat`): the unit is the
    repeat, so run-to-run variance counts (statistics.md §4). a and b are the means of the repeats'
    points.csv values; the interval is Welch's: diff ± t_{ν, (1+level)/2}·√(s_a²/n_a + s_b²/n_b),
    ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)) (Welch 1947)."""
    a = np.asarray(a_values, float)
    b = np.asarray(b_values, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return Difference(math.nan, math.nan, math.nan, math.nan, math.nan, NOT_MEASURED,
                          "fewer than two repeats with a value")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(b.mean() - a.mean())
    note = f"across repeats ({a.size} vs {b.size}, Welch t)"
    if va + vb == 0:
        lo = hi = diff
    else:
        from scipy import stats as sps  # imported on use: it costs every CLI command ~0.4 s

        nu = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
        half = float(sps.t.ppf((1 + level) / 2, nu)) * math.sqrt(va + vb)
        lo, hi = diff - half, diff + half
    v = verdict(lo, hi, lower_better)
    if _below_min_effect(v, diff, float(a.mean()), min_effect):
        v, note = NO_DIFFERENCE, f"{note}; interval excludes 0 but |B-A| < {min_effect:.0%} of A"
    return Difference(float(a.mean()), float(b.mean()), diff, lo, hi, v, note)

