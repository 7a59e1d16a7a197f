"""A node's clock offset to the driver's, by Cristian's algorithm (the offset step of NTP).

Every duration is measured on one node's `perf_counter_ns` (CLOCK_MONOTONIC) and never mixes
clocks. Only absolute instants cross machines: a point's start (the barrier) goes from the driver
to each node, and each node's recorded times come back onto the driver's clock so throughput
windows span every node. For that the driver asks a node for its clock `n` times:

    t0 = driver clock just before the call, t1 = the node's clock inside the call,
    t2 = driver clock once the answer is back; rtt = t2 - t0
    offset = (t0 + t2) / 2 - t1          (driver clock minus node clock)

The node read t1 somewhere in [t0, t2] of driver time, so the true offset is within rtt/2 of the
estimate whatever the split of the round trip (Cristian 1989, "Probabilistic clock
synchronization", Distributed Computing 3:146-158; NTP, RFC 5905 §8, takes the same midpoint and
keeps the sample with the least delay). The sample with the smallest rtt is kept: its bound
`uncertainty = rtt / 2` is the tightest. Two processes on one machine share CLOCK_MONOTONIC, so
their true offset is 0 and the estimate is within its uncertainty of 0 (tests/test_ray_cluster.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

SAMPLES = 8  # round trips per measurement: the least-delay one is kept


@dataclass(frozen=True)
class ClockOffset:
    """Driver clock minus node clock (ns), within ±uncertainty_ns; measured at driver time at_ns."""

    offset_ns: int
    uncertainty_ns: int
    rtt_ns: int
    at_ns: int
    samples: int

    def to_node(self, driver_ns: int) -> int:
        """A driver instant on the node's clock (0 stays 0: 'no time' in every record)."""
        return driver_ns - self.offset_ns if driver_ns else 0

    def to_driver(self, node_ns: int) -> int:
        return node_ns + self.offset_ns if node_ns else 0

    def as_dict(self) -> dict:
        return asdict(self)


def estimate(samples: list[tuple[int, int, int]]) -> ClockOffset:
    """The offset from (t0, t1, t2) round trips: the least-delay sample's midpoint (pure)."""
    if not samples:
        raise ValueError("no clock samples")
    t0, t1, t2 = min(samples, key=lambda s: s[2] - s[0])
    rtt = t2 - t0
    return ClockOffset(offset_ns=(t0 + t2) // 2 - t1, uncertainty_ns=(rtt + 1) // 2, rtt_ns=rtt, at_ns=t0,
                       samples=len(samples))


def measure(read_remote: Callable[[], int], n: int = SAMPLES) -> ClockOffset:
    """`n` round trips of `read_remote()` (returns the node's perf_counter_ns), then `estimate`."""
    perf = time.perf_counter_ns
    samples = []
    for _ in range(max(1, n)):
        t0 = perf()
        t1 = read_remote()
        samples.append((t0, t1, perf()))
    return estimate(samples)


def drift_ppm(start: ClockOffset, end: ClockOffset) -> float:
    """How fast the node's clock ran against the driver's over the point (parts per million);
    meaningful only when it exceeds (start + end uncertainty) / elapsed."""
    elapsed = end.at_ns - start.at_ns
    return (end.offset_ns - start.offset_ns) / elapsed * 1e6 if elapsed > 0 else 0.0
