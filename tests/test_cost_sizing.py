"""Fleet sizing, worked by hand."""

import pandas as pd
import pytest

from profiler.cost.hosted import HostedPrice
from profiler.cost.sizing import instances_for, size_fleet


def _points():
    # each point ran on 2 GPUs (one replica, TP=2); 500 input + 200 output tokens per request
    return pd.DataFrame({
        "point": [0, 1, 2], "load": [4, 8, 16], "gpu_count": [2, 2, 2],
        "req_per_s": [10.0, 20.0, 30.0], "goodput_req_per_s": [9.0, 16.0, 12.0],
        "input_tok_per_s": [5000.0, 10000.0, 15000.0], "output_tok_per_s": [2000.0, 4000.0, 6000.0],
        "ttft_p99_ms": [100.0, 300.0, 50.0], "slo_met": [True, True, False],
    })


HOSTED = HostedPrice(key="x/m", provider="x", input=0.10, output=0.50)


def test_rps_target_by_hand():
    s = size_fleet(_points(), target_rps=100, headroom=0.2, usd_per_gpu_hour=2.0, spot_usd_per_gpu_hour=1.0,
                   gpus_per_instance=8, hosted=HOSTED)
    # best SLO point: #1 with goodput 16 / 2 GPUs = 8 req/s per GPU
    assert s.point == 1 and s.capacity_metric == "goodput_req_per_s" and s.capacity_per_gpu == 8.0
    # ceil(100 / (8 × 0.8)) = ceil(15.625) = 16 GPUs = 8 replicas of 2 → 4 per 8-GPU box → 2 instances
    assert (s.gpus_needed, s.replicas, s.instances, s.billed_gpus) == (16, 8, 2, 16)
    assert s.usd_per_month_on_demand == pytest.approx(16 * 2.0 * 730)  # 23,360
    assert s.usd_per_month_spot == pytest.approx(16 * 1.0 * 730)
    # 100 req/s × 500 in / 200 out × 2,628,000 s = 1.314e11 in, 5.256e10 out
    assert s.input_tokens_per_month == pytest.approx(1.314e11)
    assert s.output_tokens_per_month == pytest.approx(5.256e10)
    assert s.hosted_usd_per_month == pytest.approx(1.314e11 * 0.1e-6 + 5.256e10 * 0.5e-6)  # 39,420


def test_instances_respect_server_size():
    s = size_fleet(_points(), target_rps=100, usd_per_gpu_hour=1.0, gpus_per_instance=3)
    assert (s.replicas, s.instances, s.billed_gpus) == (8, 8, 24)  # one 2-GPU replica per 3-GPU box
    assert instances_for(3, 16, 8) == 6  # a 16-GPU replica spans 2 boxes of 8
    no_inst = size_fleet(_points(), target_rps=100)
    assert no_inst.instances is None and no_inst.billed_gpus == 16 and no_inst.usd_per_month_on_demand is None


def test_slo_override_reevaluates_points_and_uses_throughput():
    s = size_fleet(_points(), target_rps=100, slos={"ttft_p99": 0.2})
    # ttft_p99 <= 200 ms: points 0 and 2; goodput was for other SLOs, so req_per_s counts
    assert s.point == 2 and s.capacity_metric == "req_per_s" and s.capacity_per_gpu == 15.0
    assert s.gpus_needed == 9  # ceil(100 / (15 × 0.8)) = ceil(8.33)
    assert s.replicas == 5 and s.billed_gpus == 10


def test_tokens_per_day_target():
    s = size_fleet(_points(), tokens_per_day=8.64e9, headroom=0.2)
    # 1e5 output tok/s; point 1: 4000 × 16/20 good fraction / 2 GPUs = 1600 per GPU
    assert s.target_per_s == pytest.approx(1e5) and s.capacity_per_gpu == pytest.approx(1600)
    assert s.gpus_needed == 79 and s.replicas == 40 and s.billed_gpus == 80
    assert s.input_tokens_per_month == pytest.approx(s.output_tokens_per_month * 2.5)
    t = size_fleet(_points(), tokens_per_day=8.64e9, tokens_kind="total", headroom=0.0)
    assert t.capacity_per_gpu == pytest.approx(14000 * 0.8 / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        size_fleet(_points())
    with pytest.raises(ValueError, match="exactly one"):
        size_fleet(_points(), target_rps=1, tokens_per_day=1)
    with pytest.raises(ValueError, match="headroom"):
        size_fleet(_points(), target_rps=1, headroom=1.0)
    with pytest.raises(ValueError, match="no sweep point meets"):
        size_fleet(_points(), target_rps=1, slos={"ttft_p99": 0.01})
    with pytest.raises(ValueError, match="available: ttft_p99"):
        size_fleet(_points(), target_rps=1, slos={"tpot_p99": 0.05})
