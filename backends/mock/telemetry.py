"""Server-side statistics of the mock: vLLM's Prometheus metrics and simulated dcgm-exporter GPUs.

vLLM block (``prometheus_client``, own ``CollectorRegistry``): gauges read from the engine at
scrape time, counters and histograms accumulated as requests are served (label ``model_name``
and ``engine="0"``, vLLM's names and buckets). Histograms are plain bucket arrays because
``prometheus_client.Histogram.observe`` costs more per call than a whole chunk send.

GPU block (dcgm-exporter text format, one series per GPU of the preset):
``DCGM_FI_DEV_POWER_USAGE`` = ``perfmodel.power_w(running)`` (W, instantaneous);
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` = ``ENERGY_BASE_MJ + 1000 * ∫ power dt`` (mJ, exact
integral of the piecewise-constant power, integer like DCGM's);
``DCGM_FI_DEV_GPU_UTIL`` = 100 * share of the last ~1 s the engine was stepping;
``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` = the same as a ratio; ``DCGM_FI_PROF_SM_ACTIVE`` =
``activity(running)``; ``DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`` = 0.6 * activity;
``DCGM_FI_PROF_DRAM_ACTIVE`` = 0.8 * activity (decode is bandwidth-bound);
``DCGM_FI_DEV_FB_USED`` = 90 % of the frame buffer (vLLM preallocates
``gpu_memory_utilization=0.9`` at start), ``FB_FREE`` the rest;
``DCGM_FI_DEV_SM_CLOCK`` = idle + (max - idle) * util; ``DCGM_FI_DEV_GPU_TEMP`` =
``30 + 45 * (mean power over ~1 s - idle) / (tdp - idle)`` °C.
It is formatted by hand, not by prometheus_client, because dcgm-exporter exposes the energy
counter without the ``_total`` suffix that prometheus_client would append.
"""

from __future__ import annotations

import socket
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from backends.mock.perfmodel import Preset, activity, power_w

ENERGY_BASE_MJ = 1_000_000_000  # a real counter counts since driver load, never from 0

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                   120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


class FastHistogram:
    """Cumulative-on-export histogram; ``counts[i]`` holds observations in (le[i-1], le[i]]."""

    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float, n: int = 1) -> None:
        self.counts[bisect_left(self.buckets, v)] += n
        self.sum += v * n
        self.count += n

    def cumulative(self) -> list[tuple[str, float]]:
        out = []
        acc = 0
        for le, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            out.append((repr(float(le)), acc))
        out.append(("+Inf", self.count))
        return out


class ServerStats:
    """Counters and histograms of served requests (vLLM semantics, server-side times)."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.success: dict[str, int] = {"length": 0, "stop": 0, "abort": 0, "error": 0}
        self.ttft = FastHistogram(TTFT_BUCKETS)
        self.itl = FastHistogram(ITL_BUCKETS)
        self.e2e = FastHistogram(REQUEST_BUCKETS)
        self.queue = FastHistogram(REQUEST_BUCKETS)
        self.prefix = None  # the server's PrefixCache (backends/mock/prefixcache.py), when on


class PowerMeter:
    """Exact integral of the modelled power and of busy time, plus ~1 s windows of both.

    ``set(now, running, busy)`` must be called whenever the running count or busy state changes;
    between calls power is constant, so ``energy_j`` is exact."""

    WINDOW_NS = 1_000_000_000

    def __init__(self, preset: Preset, now_ns: int) -> None:
        self.preset = preset
        self.t = now_ns
        self.running = 0
        self.busy = False
        self.energy_j = 0.0  # per GPU
        self.busy_s = 0.0
        self._power = power_w(preset, 0)
        self.snapshots: deque[tuple[int, float, float]] = deque([(now_ns, 0.0, 0.0)])

    def advance(self, now_ns: int) -> None:
        dt = (now_ns - self.t) * 1e-9
        if dt > 0:
            self.energy_j += self._power * dt
            if self.busy:
                self.busy_s += dt
            self.t = now_ns

    def set(self, now_ns: int, running: int, busy: bool) -> None:
        self.advance(now_ns)
        if running != self.running:
            self.running = running
            self._power = power_w(self.preset, running)
        self.busy = busy

    def tick(self, now_ns: int) -> None:
        """Record a window snapshot (call a few times per second)."""
        self.advance(now_ns)
        snaps = self.snapshots
        snaps.append((now_ns, self.busy_s, self.energy_j))
        while len(snaps) > 2 and snaps[1][0] <= now_ns - self.WINDOW_NS:
            snaps.popleft()

    def window(self, now_ns: int) -> tuple[float, float]:
        """(busy fraction, mean power W) over the last ~1 s."""
        self.advance(now_ns)
        t0, b0, e0 = self.snapshots[0]
        span = (now_ns - t0) * 1e-9
        if span <= 0:
            return (1.0 if self.busy else 0.0), self._power
        return min(1.0, (self.busy_s - b0) / span), (self.energy_j - e0) / span

    @property
    def power(self) -> float:
        return self._power


EngineState = Callable[[], tuple[int, int, float]]  # (running, waiting, kv usage 0..1)


class VllmCollector:
    """prometheus_client collector exposing vLLM's metric names."""

    def __init__(self, model: str, stats: ServerStats, state: EngineState) -> None:
        self.labels = ["model_name", "engine"]
        self.values = [model, "0"]
        self.stats = stats
        self.state = state

    def _gauge(self, name: str, doc: str, v: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=self.labels)
        g.add_metric(self.values, v)
        return g

    def _counter(self, name: str, doc: str, v: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=self.labels)
        c.add_metric(self.values, v)
        return c

    def _hist(self, name: str, doc: str, h: FastHistogram) -> HistogramMetricFamily:
        m = HistogramMetricFamily(name, doc, labels=self.labels)
        m.add_metric(self.values, h.cumulative(), h.sum)
        return m

    def collect(self) -> Iterable[Metric]:
        s = self.stats
        running, waiting, kv = self.state()
        yield self._gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running)
        yield self._gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting)
        yield self._gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv)
        yield self._counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", s.preemptions)
        yield self._counter("vllm:prompt_tokens", "Number of prefill tokens processed.", s.prompt_tokens)
        yield self._counter("vllm:generation_tokens", "Number of generation tokens processed.", s.generation_tokens)
        ok = CounterMetricFamily("vllm:request_success", "Count of successfully processed requests.",
                                 labels=[*self.labels, "finished_reason"])
        for reason, n in s.success.items():
            ok.add_metric([*self.values, reason], n)
        yield ok
        if s.prefix is not None:
            yield self._counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                                s.prefix.queries)
            yield self._counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                                s.prefix.hits)
        yield self._hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", s.ttft)
        yield self._hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", s.itl)
        yield self._hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", s.e2e)
        yield self._hist("vllm:request_queue_time_seconds",
                         "Histogram of time spent in WAITING phase for request.", s.queue)


def vllm_registry(model: str, stats: ServerStats, state: EngineState) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(VllmCollector(model, stats, state))
    return reg


def vllm_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


_DCGM_FIELDS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Frame buffer memory free (in MB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Frame buffer memory used (in MB)."),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
     "Ratio of cycles the device memory interface is active sending or receiving data."),
)


def gpu_values(preset: Preset, meter: PowerMeter, now_ns: int) -> dict[str, float]:
    """Every simulated DCGM field of one GPU (all GPUs of a replica read the same)."""
    util, mean_power = meter.window(now_ns)
    act = activity(preset, meter.running)
    fb_used = int(preset.fb_total_mib * 0.9)
    span_w = max(preset.tdp_w - preset.idle_w, 1e-9)
    return {
        "DCGM_FI_DEV_SM_CLOCK": int(preset.sm_clock_idle_mhz + (preset.sm_clock_max_mhz - preset.sm_clock_idle_mhz) * util),
        "DCGM_FI_DEV_GPU_TEMP": int(round(30 + 45 * max(0.0, mean_power - preset.idle_w) / span_w)),
        "DCGM_FI_DEV_POWER_USAGE": meter.power,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ENERGY_BASE_MJ + int(meter.energy_j * 1000),
        "DCGM_FI_DEV_GPU_UTIL": int(round(100 * util)),
        "DCGM_FI_DEV_FB_FREE": preset.fb_total_mib - fb_used,
        "DCGM_FI_DEV_FB_USED": fb_used,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": util,
        "DCGM_FI_PROF_SM_ACTIVE": act,
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": 0.6 * act,
        "DCGM_FI_PROF_DRAM_ACTIVE": 0.8 * act,
    }


def dcgm_text(preset: Preset, meter: PowerMeter, now_ns: int, hostname: str | None = None) -> bytes:
    """The page a dcgm-exporter on :9400/metrics would serve for this replica's GPUs."""
    host = hostname or socket.gethostname()
    values = gpu_values(preset, meter, now_ns)
    out: list[str] = []
    for name, kind, doc in _DCGM_FIELDS:
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        v = values[name]
        sval = f"{v:.6f}" if isinstance(v, float) else str(v)
        for i in range(preset.gpus):
            out.append(
                f'{name}{{gpu="{i}",UUID="GPU-mock-{i}",device="nvidia{i}",'
                f'modelName="{preset.gpu_name}",Hostname="{host}"}} {sval}\n'
            )
    return "".join(out).encode()
