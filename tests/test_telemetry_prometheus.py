"""Prometheus text parsing on real (vLLM CPU) and documented-format (dcgm-exporter, Triton) pages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from profiler.telemetry.histograms import (
    histogram_bounds,
    histogram_delta,
    histogram_quantile,
    parse_histogram,
)
from profiler.telemetry.prometheus import (
    combine,
    gpu_info_from_text,
    kinds_in,
    metrics_url_candidates,
    parse_exposition,
)
from profiler.telemetry.samples import CounterTracker

FIX = Path(__file__).parent / "fixtures" / "metrics"
TTFT = "vllm:time_to_first_token_seconds"


def _text(name: str) -> str:
    return (FIX / name).read_text()


def _samples(text: str, tracker: CounterTracker | None = None, t_ns: int = 7):
    return {(s.source, s.gpu, s.metric): s.value for s in combine(parse_exposition(text), tracker or CounterTracker(), t_ns)}


def test_vllm_cpu_page():
    text = _text("vllm_cpu.txt")
    assert kinds_in(text) == {"vllm"}
    got = _samples(text)
    assert got[("vllm", "", "prompt_tokens_total")] == 4959.0
    assert got[("vllm", "", "generation_tokens_total")] == 4384.0
    assert got[("vllm", "", "prefix_cache_queries_total")] == 4959.0
    assert got[("vllm", "", "prefix_cache_hits_total")] == 0.0
    assert got[("vllm", "", "kv_cache_usage")] == 0.0
    for m in ("requests_running", "requests_waiting", "preemptions_total"):
        assert ("vllm", "", m) in got
    assert all(gpu == "" for _, gpu, _ in got)  # server-level only: a CPU server has no GPU metrics


def test_vllm_old_cache_usage_name_is_a_fallback_only():
    old = '# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="m"} 0.25\n'
    assert _samples(old)[("vllm", "", "kv_cache_usage")] == 0.25
    new = '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="m"} 0.5\n'
    assert _samples(old + new)[("vllm", "", "kv_cache_usage")] == 0.5


def test_vllm_engines_summed_and_ratios_averaged():
    text = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 3\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 5\n'
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.4\n'
    )
    got = _samples(text)
    assert got[("vllm", "", "requests_running")] == 8
    assert got[("vllm", "", "kv_cache_usage")] == pytest.approx(0.3)


def test_dcgm_page_units_labels_and_blanks():
    text = _text("dcgm_exporter.txt")
    assert kinds_in(text) == {"dcgm"}
    got = _samples(text)
    assert got[("dcgm", "0", "power_w")] == 412.25
    assert got[("dcgm", "0", "energy_j")] == pytest.approx(8812345.678)  # mJ -> J
    assert got[("dcgm", "1", "gpu_util")] == pytest.approx(0.95)  # % -> 0-1
    assert got[("dcgm", "0", "sm_active")] == 0.64
    assert got[("dcgm", "0", "tensor_active")] == 0.213
    assert got[("dcgm", "1", "dram_active")] == 0.53
    assert got[("dcgm", "0", "mem_used_mib")] == 73072
    assert got[("dcgm", "1", "sm_clock_mhz")] == 1755
    assert got[("dcgm", "0", "temp_c")] == 61
    assert ("dcgm", "1", "temp_c") not in got  # DCGM int64 blank sentinel dropped
    info = gpu_info_from_text(text)
    assert [(i["gpu"], i["name"], i["driver"]) for i in info] == [
        ("0", "NVIDIA H100 80GB HBM3", "550.90.07"),
        ("1", "NVIDIA H100 80GB HBM3", "550.90.07"),
    ]
    assert info[1]["uuid"].startswith("GPU-8f2e9d14")


def test_triton_page_summed_over_models():
    text = _text("triton.txt")
    assert kinds_in(text) == {"triton"}
    got = _samples(text)
    assert got[("triton", "", "queue_duration_us_total")] == 11110 + 890
    assert got[("triton", "", "compute_infer_duration_us_total")] == 47950001 + 99999
    assert got[("triton", "", "pending_requests")] == 4
    uuid = "GPU-5a0b2c6e-1f3d-4c2a-9e7b-0d1c2b3a4f50"
    assert got[("triton", uuid, "power_w")] == 287.5
    assert got[("triton", uuid, "energy_j")] == 51234.75
    assert got[("triton", uuid, "gpu_util")] == 0.82
    assert got[("triton", uuid, "mem_used_mib")] == pytest.approx(76621397504 / 2**20)


def test_mock_style_page_with_vllm_and_dcgm():
    text = _text("vllm_cpu.txt") + _text("dcgm_exporter.txt")
    assert kinds_in(text) == {"vllm", "dcgm"}
    sources = {src for src, _, _ in _samples(text)}
    assert sources == {"vllm", "dcgm"}


def test_server_counter_reset_continues_from_new_value():
    tracker = CounterTracker()
    page = '# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total{{model_name="m"}} {}\n'
    values = [_samples(page.format(v), tracker)[("vllm", "", "preemptions_total")] for v in (10, 12, 3, 5)]
    assert values == [10, 12, 15, 17]  # restart after 12: +3 then +2
    assert tracker.resets == 1


def test_metrics_url_candidates():
    assert metrics_url_candidates("http://h:8000/v1") == ["http://h:8000/v1/metrics", "http://h:8000/metrics"]
    assert metrics_url_candidates("http://h:8000") == ["http://h:8000/metrics"]
    assert metrics_url_candidates("http://h:9400/metrics") == ["http://h:9400/metrics"]


def test_ttft_histogram_on_real_vllm_page():
    hist = parse_histogram(_text("vllm_cpu.txt"), TTFT)
    assert hist[math.inf] == 164 and hist[0.005] == 11 and hist[0.01] == 113
    # rank 82 lies in (0.005, 0.01]: 0.005 + 0.005 * (82 - 11) / (113 - 11)
    assert histogram_quantile(hist, 0.5) == pytest.approx(0.005 + 0.005 * 71 / 102)
    assert histogram_bounds(hist, 0.5) == (0.005, 0.01)
    assert parse_histogram(_text("vllm_cpu.txt"), TTFT, {"model_name": "other"}) == {}
    assert parse_histogram(_text("vllm_cpu.txt"), TTFT, {"model_name": "tiny-llama"}) == hist


def test_histogram_delta_quantile_and_edges():
    before = {0.1: 2.0, 0.5: 4.0, 1.0: 4.0, math.inf: 4.0}
    after = {0.1: 2.0, 0.5: 8.0, 1.0: 12.0, math.inf: 14.0}
    d = histogram_delta(before, after)
    assert d == {0.1: 0.0, 0.5: 4.0, 1.0: 8.0, math.inf: 10.0}
    assert histogram_quantile(d, 0.2) == pytest.approx(0.1 + 0.4 * 2 / 4)
    assert histogram_quantile(d, 0.6) == pytest.approx(0.5 + 0.5 * 2 / 4)
    assert histogram_quantile(d, 0.99) == 1.0  # in the +Inf bucket: highest finite bound
    assert histogram_bounds(d, 0.99) == (1.0, math.inf)
    assert histogram_quantile({0.5: 3.0, math.inf: 3.0}, 0.5) == pytest.approx(0.25)  # first bucket from 0
    assert math.isnan(histogram_quantile({}, 0.5))
    assert math.isnan(histogram_quantile({0.1: 0.0, math.inf: 0.0}, 0.5))
    assert all(math.isnan(x) for x in histogram_bounds({}, 0.5))
    # a decrease means the server restarted between the scrapes: take `after` as is
    assert histogram_delta(after, before) == before
