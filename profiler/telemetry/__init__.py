"""GPU and server telemetry on the request records' clock (`time.perf_counter_ns()`).

Every reading becomes a `Sample(t_ns, source, gpu, metric, value)`; `gpu` is "" for server-level
metrics.  Metric names are ours, normalised across sources:

| ours | unit | nvml | dcgm-exporter | triton | vllm |
|---|---|---|---|---|---|
| power_w | W | FieldValues POWER_INSTANT, else GetPowerUsage (mW/1000) | DCGM_FI_DEV_POWER_USAGE (W) | nv_gpu_power_usage (W) | |
| energy_j | J, cumulative, monotone | GetTotalEnergyConsumption (mJ/1000) | DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ/1000) | nv_energy_consumption (J) | |
| gpu_util | 0-1 duty cycle | GetUtilizationRates.gpu (%/100) | DCGM_FI_DEV_GPU_UTIL (%/100) | nv_gpu_utilization (0-1) | |
| sm_active | 0-1 | | DCGM_FI_PROF_SM_ACTIVE | | |
| tensor_active | 0-1 | | DCGM_FI_PROF_PIPE_TENSOR_ACTIVE | | |
| dram_active | 0-1 | | DCGM_FI_PROF_DRAM_ACTIVE | | |
| mem_used_mib | MiB | GetMemoryInfo.used (B/2**20) | DCGM_FI_DEV_FB_USED (MiB) | nv_gpu_memory_used_bytes (B/2**20) | |
| sm_clock_mhz | MHz | GetClockInfo(SM) | DCGM_FI_DEV_SM_CLOCK | | |
| mem_clock_mhz | MHz | GetClockInfo(MEM) | DCGM_FI_DEV_MEM_CLOCK | | |
| temp_c | degC | GetTemperatureV, else GetTemperature | DCGM_FI_DEV_GPU_TEMP | | |
| throttle_reasons | bitmask | GetCurrentClocksEventReasons, else ...ThrottleReasons | DCGM_FI_DEV_CLOCK_THROTTLE_REASONS / _CLOCKS_EVENT_REASONS | | |
| kv_cache_usage | 0-1 | | | | vllm:kv_cache_usage_perc (fallback vllm:gpu_cache_usage_perc) |
| requests_running | count | | | | vllm:num_requests_running |
| requests_waiting | count | | | | vllm:num_requests_waiting |
| preemptions_total | cumulative | | | | vllm:num_preemptions_total |
| prompt_tokens_total | cumulative | | | | vllm:prompt_tokens_total |
| generation_tokens_total | cumulative | | | | vllm:generation_tokens_total |
| prefix_cache_queries_total | cumulative tokens | | | | vllm:prefix_cache_queries_total |
| prefix_cache_hits_total | cumulative tokens | | | | vllm:prefix_cache_hits_total |
| queue_duration_us_total | cumulative us | | | nv_inference_queue_duration_us (summed over models) | |
| compute_infer_duration_us_total | cumulative us | | | nv_inference_compute_infer_duration_us | |
| pending_requests | count | | | nv_inference_pending_request_count | |

`gpu` column: NVML physical index for nvml; dcgm-exporter's `gpu` label; Triton's `gpu_uuid`.

Counter rule (energy_j and every `*_total`): readings are turned into one monotone series per
series as they are read.  A decrease means the counter was reset (driver reload, exporter or
server restart) and restarted from zero, so the series continues from the new value (increment =
new reading).  A decrease from above half of a known register range (NVML's uint64 mJ) is a
wrap: increment = range - previous + new.  See `samples.CounterTracker`.

`gpu_util` is NVML's "at least one kernel was running" share of time, not SM occupancy: one tiny
kernel running constantly reads 1.0.  `sm_active` / `tensor_active` (DCGM profiling metrics) are
the honest activity measures when available.
"""

from profiler.telemetry.histograms import (
    histogram_bounds,
    histogram_delta,
    histogram_quantile,
    parse_histogram,
)
from profiler.telemetry.nvml import NO_GPU_NOTICE, NvmlSource
from profiler.telemetry.prometheus import PromSource, fetch_text
from profiler.telemetry.samples import CounterTracker, Sample, Source
from profiler.telemetry.session import TelemetrySession, build_sources
from profiler.telemetry.summary import TELEMETRY_COLUMNS, samples_frame, summarize_point

__all__ = [
    "NO_GPU_NOTICE",
    "TELEMETRY_COLUMNS",
    "CounterTracker",
    "NvmlSource",
    "PromSource",
    "Sample",
    "Source",
    "TelemetrySession",
    "build_sources",
    "fetch_text",
    "histogram_bounds",
    "histogram_delta",
    "histogram_quantile",
    "parse_histogram",
    "samples_frame",
    "summarize_point",
    "server_metrics_url",
]


def server_metrics_url(sources: list) -> str | None:
    """The `/metrics` URL of the inference server (vLLM or Triton) among `sources`, for the
    per-point histogram scrapes; None when there is none."""
    for src in sources:
        if isinstance(src, PromSource) and src.kinds & {"vllm", "triton"}:
            return src.url
    return None
