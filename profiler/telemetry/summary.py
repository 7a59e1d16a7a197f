"""Per-point telemetry summary (pure): power, energy per token, utilisation, server queue state.

Window rules, for a point [start_ns, end_ns]:
  * A series is one (source, gpu, metric).  It takes part only if it has >= 1 sample inside the
    window.  The nearest sample before start and the nearest after end, when present, are used only
    to interpolate the value AT start and AT end (linear); without them the first / last inside
    value is held to the edge.  Call `TelemetrySession.sample_now()` after a point ends and drain
    before summarising, so the after-end neighbour exists and a later recompute gives the same
    numbers.
  * Time-weighted mean of a gauge = trapezoid integral of that piecewise-linear curve over
    [start, end] / (end - start).
  * One source per metric, never a sum of two views of the same GPU: the first source in
    nvml > dcgm > triton > mock (GPU metrics) or vllm > triton > mock (server metrics) that has
    samples of that metric in the window.
  * Counters are first made monotone with the reset rule (a decrease means the counter restarted:
    the increment is the new value), then differenced.

Columns (TELEMETRY_COLUMNS):
  power_mean_w        sum over GPUs of each GPU's time-weighted mean power
  power_p95_w         p95 over the union of sample times of sum_g P_g(t) (each P_g interpolated)
  energy_j            counter: sum_g [E_g(end) - E_g(start)] (E interpolated at the edges; an edge
                      without a neighbour is extrapolated at the span's mean rate, i.e. the covered
                      delta is scaled by (end-start)/(covered span)); else sum_g integral of P_g dt
  energy_source       "counter" | "integrated" | ""
  j_per_output_token  energy_j / output_tokens
  output_tokens_per_kwh  output_tokens / (energy_j / 3.6e6)
  gpu_util_mean       mean over GPUs of time-weighted gpu_util (duty cycle, 0-1)
  sm_active_mean      same for DCGM sm_active (0-1); NaN without DCP metrics
  mem_used_peak_mib   max over GPUs and samples of memory used (the fullest GPU)
  kv_cache_usage_mean/max  time-weighted mean / max sample of kv_cache_usage (0-1)
  queue_depth_mean/max     same for requests_waiting (vLLM), else pending_requests (Triton)
  running_mean        time-weighted mean of requests_running
  preemptions         counter delta of preemptions_total (from the sample before start if any)
  prefix_cache_hit_rate    delta hits / delta queries
  throttle_s          seconds in [start, end] during which any GPU's last throttle_reasons reading
                      had a power or thermal bit set (SwPowerCap 0x4, HwSlowdown 0x8,
                      SwThermal 0x20, HwThermal 0x40, HwPowerBrake 0x80)
  power_samples       power samples inside the window (all GPUs)
  gpu_count           GPUs seen in the window (power, else any GPU metric)
  gpu_name            model name(s) from `gpu_info` (optional argument), "" when unknown
Missing data gives NaN (numbers) or "" (text), never a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

TELEMETRY_COLUMNS: list[str] = [
    "power_mean_w",
    "power_p95_w",
    "energy_j",
    "energy_source",
    "j_per_output_token",
    "output_tokens_per_kwh",
    "gpu_util_mean",
    "sm_active_mean",
    "mem_used_peak_mib",
    "kv_cache_usage_mean",
    "kv_cache_usage_max",
    "queue_depth_mean",
    "queue_depth_max",
    "running_mean",
    "preemptions",
    "prefix_cache_hit_rate",
    "throttle_s",
    "power_samples",
    "gpu_count",
    "gpu_name",
]

GPU_PRIORITY = ("nvml", "dcgm", "triton", "mock")
SERVER_PRIORITY = ("vllm", "triton", "mock")
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
NAN = float("nan")


@dataclass
class Series:
    """One (source, gpu, metric) series around a window: inside samples plus edge neighbours."""

    t: np.ndarray  # ns, inside [start, end], sorted
    v: np.ndarray
    prev: tuple[int, float] | None  # nearest sample before start
    next: tuple[int, float] | None  # nearest sample after end


def samples_frame(samples: list) -> pd.DataFrame:
    """Samples as the `telemetry.parquet` frame: t_ns int64, source/gpu/metric str, value float64."""
    df = pd.DataFrame(samples, columns=["t_ns", "source", "gpu", "metric", "value"])
    return df.astype({"t_ns": "int64", "source": str, "gpu": str, "metric": str, "value": "float64"})


def _select(by_metric: dict[str, pd.DataFrame], metric: str, priority: tuple[str, ...], start: int, end: int) -> dict[str, Series]:
    """Series per GPU of `metric` from the first source (by priority) with samples in the window."""
    m = by_metric.get(metric)
    if m is None or m.empty:
        return {}
    inside = m[(m["t_ns"] >= start) & (m["t_ns"] <= end)]
    present = set(inside["source"].unique())
    if not present:
        return {}
    order = [s for s in priority if s in present] + sorted(present - set(priority))
    m = m[m["source"] == order[0]].sort_values("t_ns", kind="stable")
    out: dict[str, Series] = {}
    for gpu, g in m.groupby("gpu", sort=True):
        t = g["t_ns"].to_numpy(dtype=np.int64)
        v = g["value"].to_numpy(dtype=float)
        ok = ~np.isnan(v)
        t, v = t[ok], v[ok]
        mask = (t >= start) & (t <= end)
        if not mask.any():
            continue
        before, after = np.flatnonzero(t < start), np.flatnonzero(t > end)
        prev = (int(t[before[-1]]), float(v[before[-1]])) if before.size else None
        nxt = (int(t[after[0]]), float(v[after[0]])) if after.size else None
        out[str(gpu)] = Series(t[mask], v[mask], prev, nxt)
    return out


def _edge_curve(s: Series, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of the piecewise-linear curve on [start, end], edges interpolated or held."""
    t0, v0, t1, v1 = s.t[0], s.v[0], s.t[-1], s.v[-1]
    vs = v0 if s.prev is None else s.prev[1] + (v0 - s.prev[1]) * (start - s.prev[0]) / (t0 - s.prev[0])
    ve = v1 if s.next is None else v1 + (s.next[1] - v1) * (end - t1) / (s.next[0] - t1)
    t = np.concatenate(([start], s.t, [end])).astype(float)
    v = np.concatenate(([vs], s.v, [ve]))
    return t, v


def _integral_s(s: Series, start: int, end: int) -> float:
    """Integral of the series over [start, end], in value x seconds (trapezoid)."""
    t, v = _edge_curve(s, start, end)
    return float(np.sum((v[1:] + v[:-1]) * np.diff(t)) / 2.0) / 1e9


def _time_mean(s: Series, start: int, end: int) -> float:
    if end <= start:
        return float(np.mean(s.v))
    return _integral_s(s, start, end) / ((end - start) / 1e9)


def monotone(v: np.ndarray) -> np.ndarray:
    """Cumulative counter made monotone: c_0 = v_0; c_i = c_{i-1} + (v_i - v_{i-1} if v_i >= v_{i-1} else v_i)."""
    if v.size == 0:
        return v
    d = np.diff(v)
    inc = np.where(d >= 0, d, v[1:])
    return np.concatenate(([v[0]], v[0] + np.cumsum(inc)))


def _counter_delta(s: Series) -> float:
    """Event counter growth from the sample before start (else the first inside) to the last inside."""
    v = s.v if s.prev is None else np.concatenate(([s.prev[1]], s.v))
    c = monotone(v)
    return float(c[-1] - c[0])


def _energy_delta(s: Series, start: int, end: int) -> float:
    """Counter energy over [start, end] (see module docstring); NaN when the span is empty."""
    t = s.t.astype(float)
    v = s.v
    if s.prev is not None:
        t, v = np.concatenate(([s.prev[0]], t)), np.concatenate(([s.prev[1]], v))
    if s.next is not None:
        t, v = np.concatenate((t, [s.next[0]])), np.concatenate((v, [s.next[1]]))
    c = monotone(v)
    a, b = max(float(start), t[0]), min(float(end), t[-1])
    if b <= a:
        return NAN
    delta = float(np.interp(b, t, c) - np.interp(a, t, c))
    return delta * (end - start) / (b - a)


def _mean_over(series: dict[str, Series], start: int, end: int) -> float:
    if not series:
        return NAN
    return float(np.mean([_time_mean(s, start, end) for s in series.values()]))


def _throttle_s(series: dict[str, Series], start: int, end: int) -> float:
    if not series:
        return NAN
    cuts = sorted({start, end, *(int(x) for s in series.values() for x in s.t)})
    total = 0
    for x0, x1 in zip(cuts[:-1], cuts[1:], strict=True):
        for s in series.values():
            idx = np.flatnonzero(s.t <= x0)
            state = s.v[idx[-1]] if idx.size else (s.prev[1] if s.prev is not None else None)
            if state is not None and int(state) & THROTTLE_MASK:
                total += x1 - x0
                break
    return total / 1e9


def _power_p95(series: dict[str, Series]) -> float:
    times = np.unique(np.concatenate([s.t for s in series.values()])).astype(float)
    total = sum(np.interp(times, s.t.astype(float), s.v) for s in series.values())
    return float(np.percentile(total, 95))


def _gpu_name(gpus: list[str], gpu_info: list[dict] | None) -> str:
    if not gpu_info or not gpus:
        return ""
    names = []
    for g in gpus:
        hit = next((i for i in gpu_info if str(i.get("gpu")) == g or i.get("uuid") == g), None)
        if hit and hit.get("name"):
            names.append(str(hit["name"]))
    return " + ".join(sorted(set(names)))


@dataclass(frozen=True)
class _Window:
    """A point's [start, end] over the samples grouped by metric (one pass over a run-long frame)."""

    by_metric: dict[str, pd.DataFrame]
    start: int
    end: int

    def gpu(self, metric: str) -> dict[str, Series]:
        """Series per GPU of a GPU metric (source by GPU_PRIORITY)."""
        return _select(self.by_metric, metric, GPU_PRIORITY, self.start, self.end)

    def server(self, metric: str) -> Series | None:
        """The single server-wide series of a server metric (source by SERVER_PRIORITY)."""
        s = _select(self.by_metric, metric, SERVER_PRIORITY, self.start, self.end)
        return s.get("") if s else None


def _empty_summary() -> dict[str, float | str]:
    """Every TELEMETRY_COLUMNS key, NaN for numbers and "" for text."""
    out: dict[str, float | str] = dict.fromkeys(TELEMETRY_COLUMNS, NAN)
    out["energy_source"] = ""
    out["gpu_name"] = ""
    return out


def _power_columns(power: dict[str, Series], w: _Window) -> dict[str, float]:
    """power_mean_w, power_p95_w, power_samples (none without power series)."""
    if not power:
        return {}
    return {
        "power_mean_w": float(sum(_time_mean(s, w.start, w.end) for s in power.values())),
        "power_p95_w": _power_p95(power),
        "power_samples": float(sum(s.t.size for s in power.values())),
    }


def _energy(power: dict[str, Series], counters: dict[str, Series], w: _Window) -> tuple[float, str]:
    """(energy_j, energy_source): the energy counters when every GPU has one, else integrated power."""
    energy, source = NAN, ""
    if counters and len(counters) >= len(power):
        deltas = [_energy_delta(s, w.start, w.end) for s in counters.values()]
        if not any(math.isnan(d) for d in deltas):
            energy, source = float(sum(deltas)), "counter"
    if math.isnan(energy) and power and w.end > w.start:
        energy, source = float(sum(_integral_s(s, w.start, w.end) for s in power.values())), "integrated"
    return energy, source


def _energy_columns(energy: float, source: str, output_tokens: int) -> dict[str, float | str]:
    """energy_j, energy_source and the per-token figures derived from them."""
    cols: dict[str, float | str] = {"energy_j": energy, "energy_source": source}
    if not math.isnan(energy) and output_tokens > 0:
        cols["j_per_output_token"] = energy / output_tokens
        if energy > 0:
            cols["output_tokens_per_kwh"] = output_tokens / (energy / 3.6e6)
    return cols


def _gpus_seen(power: dict[str, Series], w: _Window) -> list[str]:
    """GPUs with power samples in the window, else those of the first other GPU metric that has any."""
    gpus: list[str] = sorted(power)
    if not gpus:
        for metric in ("energy_j", "gpu_util", "mem_used_mib", "sm_clock_mhz", "temp_c"):
            gpus = sorted(w.gpu(metric))
            if gpus:
                break
    return gpus


def _gpu_columns(power: dict[str, Series], w: _Window, gpu_info: list[dict] | None) -> dict[str, float | str]:
    """Utilisation, memory peak, throttle time, GPU count and name."""
    cols: dict[str, float | str] = {
        "gpu_util_mean": _mean_over(w.gpu("gpu_util"), w.start, w.end),
        "sm_active_mean": _mean_over(w.gpu("sm_active"), w.start, w.end),
    }
    mem = w.gpu("mem_used_mib")
    if mem:
        cols["mem_used_peak_mib"] = float(max(s.v.max() for s in mem.values()))
    cols["throttle_s"] = _throttle_s(w.gpu("throttle_reasons"), w.start, w.end)
    gpus = _gpus_seen(power, w)
    if gpus:
        cols["gpu_count"] = float(len(gpus))
    cols["gpu_name"] = _gpu_name(gpus, gpu_info)
    return cols


def _gauge_columns(s: Series | None, w: _Window, mean_key: str, max_key: str | None = None) -> dict[str, float]:
    """Time-weighted mean (and max sample) of a server gauge; none without the series."""
    if s is None:
        return {}
    cols = {mean_key: _time_mean(s, w.start, w.end)}
    if max_key is not None:
        cols[max_key] = float(s.v.max())
    return cols


def _server_columns(w: _Window) -> dict[str, float]:
    """KV cache, queue, running requests, preemptions and prefix cache hit rate."""
    cols = _gauge_columns(w.server("kv_cache_usage"), w, "kv_cache_usage_mean", "kv_cache_usage_max")
    queue = w.server("requests_waiting") or w.server("pending_requests")
    cols.update(_gauge_columns(queue, w, "queue_depth_mean", "queue_depth_max"))
    cols.update(_gauge_columns(w.server("requests_running"), w, "running_mean"))
    pre = w.server("preemptions_total")
    if pre is not None:
        cols["preemptions"] = _counter_delta(pre)
    hits, queries = w.server("prefix_cache_hits_total"), w.server("prefix_cache_queries_total")
    if hits is not None and queries is not None:
        dq = _counter_delta(queries)
        if dq > 0:
            cols["prefix_cache_hit_rate"] = _counter_delta(hits) / dq
    return cols


def summarize_point(
    df: pd.DataFrame,
    start_ns: int,
    end_ns: int,
    output_tokens: int,
    gpu_info: list[dict] | None = None,
) -> dict[str, float | str]:
    """Summarise telemetry samples (columns t_ns, source, gpu, metric, value) for one point.

    `gpu_info` (optional, `TelemetrySession.gpu_info()` as saved in the manifest) only fills
    `gpu_name`.  See the module docstring for every formula.
    """
    out = _empty_summary()
    if df is None or df.empty:
        return out
    w = _Window({str(k): g for k, g in df.groupby("metric", sort=False)}, int(start_ns), int(end_ns))
    power = w.gpu("power_w")
    out.update(_power_columns(power, w))
    out.update(_energy_columns(*_energy(power, w.gpu("energy_j"), w), output_tokens))
    out.update(_gpu_columns(power, w, gpu_info))
    out.update(_server_columns(w))
    return out
