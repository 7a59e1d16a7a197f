"""summarize_point on hand-built sample frames with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from profiler.telemetry import TELEMETRY_COLUMNS, summarize_point

S = 1_000_000_000  # ns per second


def frame(rows):
    return pd.DataFrame(rows, columns=["t_ns", "source", "gpu", "metric", "value"])


def series(source, gpu, metric, points):
    return [(int(t * S), source, gpu, metric, float(v)) for t, v in points]


def nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def test_columns_are_exactly_the_contract():
    out = summarize_point(frame([]), 0, S, 10)
    assert list(out) == TELEMETRY_COLUMNS


def test_counter_energy_one_gpu():
    rows = series("nvml", "0", "power_w", [(t, 100) for t in range(11)])
    rows += series("nvml", "0", "energy_j", [(t, 5000 + 100 * t) for t in range(11)])
    out = summarize_point(frame(rows), 0, 10 * S, 500, gpu_info=[{"gpu": "0", "name": "NVIDIA Fake", "uuid": "GPU-x"}])
    assert out["energy_source"] == "counter"
    assert out["energy_j"] == pytest.approx(1000)
    assert out["power_mean_w"] == pytest.approx(100)
    assert out["power_p95_w"] == pytest.approx(100)
    assert out["j_per_output_token"] == pytest.approx(2.0)
    assert out["output_tokens_per_kwh"] == pytest.approx(500 / (1000 / 3.6e6))
    assert out["power_samples"] == 11 and out["gpu_count"] == 1 and out["gpu_name"] == "NVIDIA Fake"


def test_counter_interpolated_at_edges_from_neighbours():
    # counter grows 100 J/s; samples at -0.5, 0.5, ..., 9.5, 10.5; window [0, 10] -> exactly 1000 J
    ts = [-0.5 + i for i in range(12)]
    rows = series("nvml", "0", "energy_j", [(t, 100 * t + 50) for t in ts])
    rows += series("nvml", "0", "power_w", [(t, 100) for t in ts])
    out = summarize_point(frame(rows), 0, 10 * S, 0)
    assert out["energy_j"] == pytest.approx(1000)
    assert out["power_samples"] == 10
    assert nan(out["j_per_output_token"]) and nan(out["output_tokens_per_kwh"])  # no tokens


def test_counter_reset_inside_window():
    rows = series("dcgm", "0", "energy_j", [(0, 1000), (1, 1100), (2, 50), (3, 150)])
    out = summarize_point(frame(rows), 0, 3 * S, 10)
    # 100, then the counter restarted at 0 and read 50 (+50), then +100
    assert out["energy_j"] == pytest.approx(250)
    assert out["energy_source"] == "counter"
    assert nan(out["power_mean_w"])  # no power samples: not made up from the counter


def test_integrated_energy_fallback():
    rows = series("nvml", "0", "power_w", [(t, 100 + 10 * t) for t in range(11)])  # 100 -> 200 W ramp
    out = summarize_point(frame(rows), 0, 10 * S, 1500)
    assert out["energy_source"] == "integrated"
    assert out["energy_j"] == pytest.approx(1500)
    assert out["power_mean_w"] == pytest.approx(150)
    assert out["j_per_output_token"] == pytest.approx(1.0)


def test_two_gpus_summed_and_util_averaged():
    rows = []
    for gpu, watts, util in (("0", 100, 0.2), ("1", 300, 0.6)):
        rows += series("nvml", gpu, "power_w", [(t, watts) for t in range(5)])
        rows += series("nvml", gpu, "energy_j", [(t, watts * t) for t in range(5)])
        rows += series("nvml", gpu, "gpu_util", [(t, util) for t in range(5)])
        rows += series("nvml", gpu, "mem_used_mib", [(t, 1000 * int(gpu) + t) for t in range(5)])
    info = [{"gpu": "0", "name": "A100"}, {"gpu": "1", "name": "A100"}]
    out = summarize_point(frame(rows), 0, 4 * S, 100, gpu_info=info)
    assert out["energy_j"] == pytest.approx(400 * 4)
    assert out["power_mean_w"] == pytest.approx(400)
    assert out["power_p95_w"] == pytest.approx(400)
    assert out["gpu_util_mean"] == pytest.approx(0.4)
    assert out["mem_used_peak_mib"] == 1004
    assert out["gpu_count"] == 2 and out["gpu_name"] == "A100"
    assert out["power_samples"] == 10


def test_counter_used_only_when_every_powered_gpu_has_one():
    rows = series("nvml", "0", "power_w", [(0, 100), (2, 100)]) + series("nvml", "1", "power_w", [(0, 50), (2, 50)])
    rows += series("nvml", "0", "energy_j", [(0, 0), (2, 200)])  # GPU 1 pre-Volta: no counter
    out = summarize_point(frame(rows), 0, 2 * S, 0)
    assert out["energy_source"] == "integrated" and out["energy_j"] == pytest.approx(300)


def test_one_source_per_metric_no_double_count():
    rows = series("nvml", "0", "power_w", [(0, 100), (1, 100)])
    rows += series("dcgm", "0", "power_w", [(0, 110), (1, 110)])  # same GPU seen by dcgm-exporter
    rows += series("dcgm", "0", "sm_active", [(0, 0.5), (1, 0.7)])
    out = summarize_point(frame(rows), 0, 1 * S, 0)
    assert out["power_mean_w"] == pytest.approx(100)
    assert out["sm_active_mean"] == pytest.approx(0.6)


def test_server_metrics():
    rows = series("vllm", "", "kv_cache_usage", [(0, 0.0), (5, 0.5), (10, 0.5)])
    rows += series("vllm", "", "requests_waiting", [(0, 0), (5, 4), (10, 0)])
    rows += series("vllm", "", "requests_running", [(0, 8), (10, 8)])
    rows += series("vllm", "", "preemptions_total", [(-1, 7), (3, 8), (10, 10)])
    rows += series("vllm", "", "prefix_cache_queries_total", [(-1, 1000), (10, 1400)])
    rows += series("vllm", "", "prefix_cache_hits_total", [(-1, 500), (10, 600)])
    out = summarize_point(frame(rows), 0, 10 * S, 10)
    assert out["kv_cache_usage_mean"] == pytest.approx((0.25 * 5 + 0.5 * 5) / 10)
    assert out["kv_cache_usage_max"] == 0.5
    assert out["queue_depth_mean"] == pytest.approx(2.0) and out["queue_depth_max"] == 4
    assert out["running_mean"] == pytest.approx(8)
    assert out["preemptions"] == 3  # from the sample before start
    assert out["prefix_cache_hit_rate"] == pytest.approx(100 / 400)
    for col in ("power_mean_w", "energy_j", "gpu_util_mean", "sm_active_mean", "gpu_count", "throttle_s"):
        assert nan(out[col])  # no GPU telemetry: empty, not zero
    assert out["energy_source"] == "" and out["gpu_name"] == ""


def test_triton_pending_is_queue_depth_fallback():
    rows = series("triton", "", "pending_requests", [(0, 2), (2, 2)])
    out = summarize_point(frame(rows), 0, 2 * S, 0)
    assert out["queue_depth_mean"] == pytest.approx(2) and out["queue_depth_max"] == 2


def test_throttle_seconds():
    rows = series("nvml", "0", "throttle_reasons", [(0, 0), (2, 0x4), (5, 0x1), (8, 0x40)])
    rows += series("nvml", "1", "throttle_reasons", [(0, 0), (4, 0x20), (6, 0)])
    out = summarize_point(frame(rows), 0, 10 * S, 0)
    # GPU 0 power-capped [2, 5) and thermal [8, 10]; GPU 1 thermal [4, 6): union = 3 + 2 + 2 - overlap 1
    assert out["throttle_s"] == pytest.approx(3 + 2 + 1)


def test_missing_everything_and_out_of_window():
    out = summarize_point(frame([]), 0, S, 10)
    assert out["energy_source"] == "" and out["gpu_name"] == ""
    assert all(nan(v) for k, v in out.items() if k not in ("energy_source", "gpu_name"))
    late = frame(series("nvml", "0", "power_w", [(5, 100)]))
    assert nan(summarize_point(late, 0, S, 10)["power_mean_w"])  # samples outside the window don't count


def test_samples_frame_round_trip_from_session_samples():
    from profiler.telemetry import Sample, samples_frame

    df = samples_frame([Sample(0, "nvml", "0", "power_w", 100.0), Sample(S, "nvml", "0", "power_w", 100.0)])
    assert list(df.columns) == ["t_ns", "source", "gpu", "metric", "value"]
    assert str(df["t_ns"].dtype) == "int64" and str(df["value"].dtype) == "float64"
    assert summarize_point(df, 0, S, 0)["energy_j"] == pytest.approx(100)
    assert list(samples_frame([]).columns) == ["t_ns", "source", "gpu", "metric", "value"]
