"""The telemetry sample record, our metric vocabulary, and the counter reset/wrap rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

SOURCES = ("nvml", "dcgm", "triton", "vllm")

# Cumulative metrics: the value is a running total, so a point uses a difference, never a mean.
COUNTER_METRICS = frozenset(
    {
        "energy_j",
        "preemptions_total",
        "prompt_tokens_total",
        "generation_tokens_total",
        "prefix_cache_queries_total",
        "prefix_cache_hits_total",
        "queue_duration_us_total",
        "compute_infer_duration_us_total",
    }
)

GPU_METRICS = frozenset(
    {
        "power_w",
        "energy_j",
        "gpu_util",
        "sm_active",
        "tensor_active",
        "dram_active",
        "mem_used_mib",
        "sm_clock_mhz",
        "mem_clock_mhz",
        "temp_c",
        "throttle_reasons",
    }
)

# Server-level metrics (no GPU label): every counter but energy, and the server's gauges.
SERVER_METRICS = (COUNTER_METRICS - {"energy_j"}) | {
    "kv_cache_usage",
    "requests_running",
    "requests_waiting",
    "pending_requests",
}


class Sample(NamedTuple):
    """One telemetry reading; `t_ns` is `time.perf_counter_ns()` taken just before the read."""

    t_ns: int
    source: str  # nvml | vllm | triton | dcgm
    gpu: str  # "" for server-level metrics
    metric: str
    value: float


class Source(Protocol):
    """What TelemetrySession polls. `poll()` may raise; the session counts the error and goes on."""

    name: str
    notices: list[str]

    def poll(self) -> list[Sample]: ...

    def gpu_info(self) -> list[dict]: ...

    def close(self) -> None: ...


@dataclass
class CounterTracker:
    """Turns raw cumulative readings into one monotone series per key.

    Rule, for a raw reading r after a previous raw reading p of the same key:
      * r >= p: corrected += r - p (normal growth);
      * r < p and a modulus M is known and p >= M/2: the register wrapped, corrected += (M - p) + r;
      * r < p otherwise: the counter was reset (driver reload, exporter or server restart) and
        restarted from zero, so corrected += r ("continue from the new value").  The energy spent
        between the last read before the reset and the reset itself is lost; it is at most one
        sampling period.
    The first reading of a key is taken as is (corrected = r), so the series keeps the counter's
    own origin and a difference of two corrected values equals the growth between them.
    """

    modulus: float | None = None
    _last_raw: dict[object, float] = field(default_factory=dict)
    _corrected: dict[object, float] = field(default_factory=dict)
    resets: int = 0
    wraps: int = 0

    def update(self, key: object, raw: float) -> float:
        prev = self._last_raw.get(key)
        if prev is None:
            corrected = raw
        elif raw >= prev:
            corrected = self._corrected[key] + (raw - prev)
        elif self.modulus is not None and prev >= self.modulus / 2:
            self.wraps += 1
            corrected = self._corrected[key] + (self.modulus - prev) + raw
        else:
            self.resets += 1
            corrected = self._corrected[key] + raw
        self._last_raw[key] = raw
        self._corrected[key] = corrected
        return corrected
