"""Open-loop arrival schedules: seconds from the start of a sweep point."""

from __future__ import annotations

import numpy as np

from workloads.errors import WorkloadError

KINDS = ("poisson", "constant")


def arrival_offsets(n: int, rate: float, kind: str = "poisson", seed: int = 0) -> list[float]:
    """Return ``n`` non-decreasing send times (seconds from point start) for ``rate`` req/s.

    constant: ``t_i = i / rate`` (first arrival at 0, last at ``(n - 1) / rate``).

    poisson: draw gaps ``g_i ~ Exp(mean = 1 / rate)``, ``i = 1..n``, take ``t_i = g_1 + ... + g_i``,
    then rescale every ``t_i`` by ``(n / rate) / t_n`` so the last arrival lands at exactly
    ``n / rate``. This is vLLM's ``benchmark_serving`` normalisation: a raw sum of exponentials
    misses ``n / rate`` by ~1/sqrt(n) (a few % for a few hundred requests), which shows up as
    seed-to-seed throughput noise; after rescaling, every seed offers exactly the target mean
    rate while keeping exponential-shaped gaps. As in vLLM the first arrival is one gap after 0.
    """
    if n < 0:
        raise WorkloadError(f"n must be >= 0, got {n}")
    if not rate > 0 or rate == float("inf"):
        raise WorkloadError(f"rate must be a finite number > 0 req/s, got {rate}")
    if kind not in KINDS:
        raise WorkloadError(f"unknown arrival kind {kind!r}: expected one of {', '.join(KINDS)}")
    if n == 0:
        return []
    if kind == "constant":
        return [i / rate for i in range(n)]
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, size=n))
    t *= (n / rate) / t[-1]
    t[-1] = n / rate  # exact, not off by one ulp
    return [float(v) for v in t]
