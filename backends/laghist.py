"""Loop-lag samples (whole µs) kept in bounded memory: a count per µs value below 65.536 ms, and
larger values one by one (an event loop stalled that long is rare and worth keeping exactly).

A worker appends one sample per loop iteration (backends/http_mux.py) or per probe wake-up
(profiler/loadgen.py); as a list that grew by ~0.7 MB a minute per worker in a long point
(benchmarks/scale/SOAK.md). The histogram is 256 KB whatever the point's length, and its
percentiles are exact: the same order statistics and numpy's 'linear' interpolation as
`np.percentile` of the samples (tests/test_laghist.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import accumulate

LIMIT_US = 1 << 16


class LagHistogram:
    """append(µs) like a list; len(), max() and percentile(q) of everything appended."""

    def __init__(self) -> None:
        self.counts = array("I", bytes(4 * LIMIT_US))
        self.large: list[int] = []
        self.n = 0

    def append(self, us: int) -> None:
        """One sample (an int, as the loop's `// 1000` gives); negative ones count as 0."""
        if 0 <= us < LIMIT_US:  # the hot path: one compare and one increment
            self.counts[us] += 1
        elif us < 0:
            self.counts[0] += 1
        else:
            self.large.append(int(us))
        self.n += 1

    def extend(self, samples: Iterable[int] | LagHistogram) -> None:
        if isinstance(samples, LagHistogram):
            self.counts = array("I", (a + b for a, b in zip(self.counts, samples.counts, strict=True)))
            self.large += samples.large
            self.n += samples.n
            return
        for us in samples:
            self.append(us)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        """Every sample, ascending (for callers that want the values)."""
        for us, c in enumerate(self.counts):
            yield from (us for _ in range(c))
        yield from sorted(self.large)

    def max(self) -> int:
        if self.large:
            return max(self.large)
        return next(us for us in range(LIMIT_US - 1, -1, -1) if self.counts[us])

    def percentile(self, q: float) -> float:
        """np.percentile(samples, q) ('linear'); ValueError when empty."""
        if not self.n:
            raise ValueError("no lag samples")
        g = (self.n - 1) * (q / 100.0)
        lo = int(g)
        gamma = g - lo
        a, b = self._order_stat(lo), self._order_stat(min(lo + 1, self.n - 1))
        diff = b - a
        return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma

    def _order_stat(self, k: int) -> float:
        """The k-th smallest sample (0-based)."""
        for us, below in enumerate(accumulate(self.counts)):
            if below > k:
                return float(us)
        return float(sorted(self.large)[k - (self.n - len(self.large))])
