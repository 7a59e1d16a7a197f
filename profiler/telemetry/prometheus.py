"""Scrape Prometheus `/metrics` pages of vLLM, Triton and dcgm-exporter into our samples.

Text is parsed with `prometheus_client.parser.text_string_to_metric_families`.  Sample names are
matched after dropping a trailing `_total`, because prometheus_client adds `_total` to counters
(vLLM) while Triton's prometheus-cpp exposes counters without it, and the Python parser renames
those to `_total` anyway.

Several label sets of one metric (vLLM engines, Triton models) are summed, except ratios
(`kv_cache_usage`, utilisation, activity), which are averaged.  Per-label-set counters are reset
corrected (CounterTracker) before summing.  dcgm-exporter's "blank" sentinels (DCGM_*_BLANK, e.g.
9223372036854775794 for an unsupported int64 field) are dropped, never reported as readings.
"""

from __future__ import annotations

import functools
import math
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from backends import tls
from profiler.telemetry.samples import COUNTER_METRICS, CounterTracker, Sample


@dataclass(frozen=True)
class MetricMap:
    """How one exposed metric becomes one of ours: value_ours = value_exposed * scale."""

    source: str
    metric: str
    scale: float = 1.0
    per_gpu: bool = False


# Keys are exposed names without a trailing `_total`.
METRIC_MAP: dict[str, MetricMap] = {
    # vLLM (server-level, gpu "")
    "vllm:kv_cache_usage_perc": MetricMap("vllm", "kv_cache_usage"),
    "vllm:num_requests_running": MetricMap("vllm", "requests_running"),
    "vllm:num_requests_waiting": MetricMap("vllm", "requests_waiting"),
    "vllm:num_preemptions": MetricMap("vllm", "preemptions_total"),
    "vllm:prompt_tokens": MetricMap("vllm", "prompt_tokens_total"),
    "vllm:generation_tokens": MetricMap("vllm", "generation_tokens_total"),
    "vllm:prefix_cache_queries": MetricMap("vllm", "prefix_cache_queries_total"),
    "vllm:prefix_cache_hits": MetricMap("vllm", "prefix_cache_hits_total"),
    # Triton server-level (summed over models)
    "nv_inference_queue_duration_us": MetricMap("triton", "queue_duration_us_total"),
    "nv_inference_compute_infer_duration_us": MetricMap("triton", "compute_infer_duration_us_total"),
    "nv_inference_pending_request_count": MetricMap("triton", "pending_requests"),
    # Triton GPU (label gpu_uuid)
    "nv_gpu_power_usage": MetricMap("triton", "power_w", per_gpu=True),
    "nv_energy_consumption": MetricMap("triton", "energy_j", per_gpu=True),
    "nv_gpu_utilization": MetricMap("triton", "gpu_util", per_gpu=True),
    "nv_gpu_memory_used_bytes": MetricMap("triton", "mem_used_mib", 1.0 / 2**20, per_gpu=True),
    # dcgm-exporter (label gpu)
    "DCGM_FI_DEV_POWER_USAGE": MetricMap("dcgm", "power_w", per_gpu=True),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": MetricMap("dcgm", "energy_j", 1e-3, per_gpu=True),
    "DCGM_FI_DEV_GPU_UTIL": MetricMap("dcgm", "gpu_util", 0.01, per_gpu=True),
    "DCGM_FI_PROF_SM_ACTIVE": MetricMap("dcgm", "sm_active", per_gpu=True),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": MetricMap("dcgm", "tensor_active", per_gpu=True),
    "DCGM_FI_PROF_DRAM_ACTIVE": MetricMap("dcgm", "dram_active", per_gpu=True),
    "DCGM_FI_DEV_FB_USED": MetricMap("dcgm", "mem_used_mib", per_gpu=True),
    "DCGM_FI_DEV_SM_CLOCK": MetricMap("dcgm", "sm_clock_mhz", per_gpu=True),
    "DCGM_FI_DEV_MEM_CLOCK": MetricMap("dcgm", "mem_clock_mhz", per_gpu=True),
    "DCGM_FI_DEV_GPU_TEMP": MetricMap("dcgm", "temp_c", per_gpu=True),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": MetricMap("dcgm", "throttle_reasons", per_gpu=True),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": MetricMap("dcgm", "throttle_reasons", per_gpu=True),
}

# Old names, used only when the current name is absent from the page.
FALLBACKS: dict[str, str] = {
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:gpu_prefix_cache_queries": "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits": "vllm:prefix_cache_hits",
}

_AVERAGED = frozenset({"kv_cache_usage", "gpu_util", "sm_active", "tensor_active", "dram_active"})
_GPU_LABELS = ("gpu", "gpu_uuid", "UUID")


def _is_dcgm_blank(v: float) -> bool:
    """DCGM marks missing data with sentinels near the type's maximum (dcgm_fields.h *_BLANK)."""
    return v >= 9.2e18 or 2147483632 <= v <= 2147483647 or 140737488355328.0 <= v <= 140737488355333.0


def _base(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


def kinds_in(text: str) -> set[str]:
    """Which servers' metrics a page holds: subset of {"vllm", "triton", "dcgm"}."""
    out: set[str] = set()
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith("vllm:"):
            out.add("vllm")
        elif fam.name.startswith("nv_"):
            out.add("triton")
        elif fam.name.startswith("DCGM_FI_"):
            out.add("dcgm")
    return out


def parse_exposition(text: str) -> list[tuple[str, str, str, float, tuple]]:
    """Map a page to readings `(source, gpu, metric, value, series_key)` before summing.

    `series_key` identifies the exposed label set, for per-series counter tracking.
    """
    rows: list[tuple[str, str, str, float, tuple]] = []
    seen: set[str] = set()
    pending_fallback: list[tuple[str, object]] = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            base = _base(s.name)
            if base in FALLBACKS:
                pending_fallback.append((FALLBACKS[base], s))
                continue
            if base in METRIC_MAP:
                seen.add(base)
                _append(rows, base, s)
    for base, s in pending_fallback:
        if base not in seen:
            _append(rows, base, s)
    return rows


def _append(rows: list, base: str, s) -> None:
    m = METRIC_MAP[base]
    v = float(s.value)
    if math.isnan(v) or (m.source == "dcgm" and _is_dcgm_blank(v)):
        return
    gpu = ""
    if m.per_gpu:
        gpu = next((str(s.labels[k]) for k in _GPU_LABELS if k in s.labels), "")
    key = (base, tuple(sorted(s.labels.items())))
    rows.append((m.source, gpu, m.metric, v * m.scale, key))


def combine(rows: list[tuple[str, str, str, float, tuple]], tracker: CounterTracker, t_ns: int) -> list[Sample]:
    """Reset-correct counters per series, then sum (or average ratios) per (source, gpu, metric)."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    for source, gpu, metric, v, key in rows:
        if metric in COUNTER_METRICS:
            v = tracker.update(key, v)
        acc.setdefault((source, gpu, metric), []).append(v)
    out = []
    for (source, gpu, metric), vals in acc.items():
        v = sum(vals) / len(vals) if metric in _AVERAGED else sum(vals)
        out.append(Sample(t_ns, source, gpu, metric, float(v)))
    return out


def gpu_info_from_text(text: str) -> list[dict]:
    """GPU identity from dcgm-exporter labels (`gpu`, `UUID`, `modelName`, `DCGM_FI_DRIVER_VERSION`)."""
    found: dict[str, dict] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("DCGM_FI_"):
            continue
        for s in fam.samples:
            gpu = s.labels.get("gpu")
            if gpu is None or gpu in found:
                continue
            found[gpu] = {
                "source": "dcgm",
                "gpu": gpu,
                "index": int(gpu) if gpu.isdigit() else gpu,
                "name": s.labels.get("modelName", ""),
                "uuid": s.labels.get("UUID", ""),
                "driver": s.labels.get("DCGM_FI_DRIVER_VERSION", ""),
            }
    return [found[k] for k in sorted(found, key=lambda g: (len(g), g))]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@functools.lru_cache(maxsize=8)
def _opener(url: str) -> urllib.request.OpenerDirector:
    """https:// pages are read with the endpoint's TLS settings (backends/tls.py)."""
    if not url.startswith("https://"):
        return _NO_PROXY
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPSHandler(context=tls.context_for(url)))


def fetch_text(url: str, timeout: float = 1.0) -> str:
    """GET a metrics page (proxies ignored: these endpoints are local or in-cluster)."""
    with _opener(url).open(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8", errors="replace")


def metrics_url_candidates(url: str) -> list[str]:
    """`URL/metrics`, then `scheme://host:port/metrics` when URL has a path (e.g. `/v1`)."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    path = parts.path.rstrip("/")
    if path.endswith("/metrics"):
        return [urlunsplit((parts.scheme, parts.netloc, path, "", ""))]
    out = [urlunsplit((parts.scheme, parts.netloc, path + "/metrics", "", ""))]
    root = urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))
    if root not in out:
        out.append(root)
    return out


class PromSource:
    """Polls one `/metrics` URL; every metric of METRIC_MAP found on it becomes a sample.

    A page may carry several sources at once (the inferprof mock server puts `DCGM_FI_*` beside
    `vllm:*`; Triton can re-export `vllm:*`).
    """

    def __init__(self, url: str, timeout: float = 1.0, kinds: set[str] | None = None, first_text: str | None = None):
        self.url = url
        self.timeout = timeout
        self.kinds = set(kinds or ())
        self.name = "prom:" + url
        self.notices: list[str] = []
        self._tracker = CounterTracker()
        self._gpu_info = gpu_info_from_text(first_text) if first_text else []

    def fetch(self) -> tuple[int, str]:
        """The page and when it was rendered; parsing is left to `parse` (see TelemetrySession)."""
        t0 = time.perf_counter_ns()
        text = fetch_text(self.url, self.timeout)
        # The server renders the page somewhere between our request and the last byte.
        return (t0 + time.perf_counter_ns()) // 2, text

    def parse(self, t_ns: int, text: str) -> list[Sample]:
        """Samples from a fetched page; call in fetch order (counters are tracked across pages)."""
        if not self._gpu_info and "DCGM_FI_" in text:
            self._gpu_info = gpu_info_from_text(text)
        return combine(parse_exposition(text), self._tracker, t_ns)

    def poll(self) -> list[Sample]:
        return self.parse(*self.fetch())

    def gpu_info(self) -> list[dict]:
        return list(self._gpu_info)

    def close(self) -> None:
        pass
