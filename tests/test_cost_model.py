"""Cost model: worked examples computed by hand."""

import math

import pandas as pd
import pytest

from profiler.cost.model import (
    add_cost_columns,
    api_split,
    cheapest_slo_point,
    cost_per_1m_from_rate,
    energy_cost_usd,
    gpu_cost_usd,
    usd_per_1m_blended,
    usd_per_1m_input,
    usd_per_1m_output,
)
from profiler.cost.pricing import Pricing


def test_worked_example_8_h100_at_6_88_20k_tok_s():
    # 8 GPUs × $6.88 = $55.04/h; 20,000 tok/s × 3600 s = 72M tok/h; 55.04 / 72 = $0.7644 per 1M
    assert cost_per_1m_from_rate(8, 6.88, 20_000) == pytest.approx(0.7644, abs=1e-4)
    # the same through the window formulas: a 60 s window producing 1.2M tokens
    cost = gpu_cost_usd(8, 6.88, 60)
    assert cost == pytest.approx(55.04 / 60)  # $0.9173 for one minute
    assert round(usd_per_1m_output(cost, 1_200_000), 2) == 0.76


def test_energy_cost_and_pue():
    # 3.6 MJ = 1 kWh; PUE 1.5 → 1.5 kWh at $0.20 = $0.30
    assert energy_cost_usd(3.6e6, 1.5, 0.20) == pytest.approx(0.30)
    assert math.isnan(energy_cost_usd(3.6e6, 1.0, None))
    assert math.isnan(energy_cost_usd(float("nan"), 1.0, 0.1))


def test_input_blended_and_api_split():
    cost = 1.0  # $1 for 600k input + 400k output tokens
    assert usd_per_1m_input(cost, 600_000) == pytest.approx(1 / 0.6)
    assert usd_per_1m_blended(cost, 600_000, 400_000) == pytest.approx(1.0)
    p_in, p_out = api_split(cost, 600_000, 400_000, ratio=4)
    # p_in = 1 / (0.6 + 4 × 0.4) = 1 / 2.2 per 1M; p_out = 4 × p_in
    assert p_in == pytest.approx(1 / 2.2)
    assert p_out == pytest.approx(4 / 2.2)
    # the split reproduces the cost exactly
    assert 0.6 * p_in + 0.4 * p_out == pytest.approx(cost)
    assert math.isnan(usd_per_1m_output(cost, 0))


def _points():
    return pd.DataFrame({
        "point": [0, 1, 2], "load": [1, 4, 16], "window_s": [100.0, 100.0, 100.0],
        "input_tokens": [100_000, 400_000, 1_600_000], "output_tokens": [200_000, 800_000, 3_200_000],
        "input_tok_per_s": [1000, 4000, 16000], "output_tok_per_s": [2000, 8000, 32000],
        "energy_j": [36_000.0, 72_000.0, float("nan")], "gpu_count": [2, 2, 2],
        "slo_met": [True, True, False],
    })


def test_add_cost_columns_hand_values():
    p = Pricing(gpu="h100-sxm", provider="x", usd_per_gpu_hour=3.6, energy_usd_per_kwh=0.5, pue=2.0)
    out = add_cost_columns(_points(), p)
    # 2 GPUs × $3.6/h × 100 s / 3600 = $0.20 per point
    assert list(out["gpu_cost_usd"]) == pytest.approx([0.2, 0.2, 0.2])
    assert out["usd_per_1m_output"].tolist() == pytest.approx([1.0, 0.25, 0.0625])
    assert out["usd_per_1m_input"].tolist() == pytest.approx([2.0, 0.5, 0.125])
    assert out["usd_per_1m_blended"][0] == pytest.approx(0.2 / 300_000 * 1e6)
    # 36 kJ × PUE 2 = 0.02 kWh × $0.5 = $0.01 → per 1M of 200k output = $0.05
    assert out["energy_cost_usd"][0] == pytest.approx(0.01)
    assert out["energy_usd_per_1m_output"][0] == pytest.approx(0.05)
    assert math.isnan(out["energy_cost_usd"][2])
    assert "usd_per_gpu_hour" in out and out["usd_per_gpu_hour"][0] == 3.6
    assert "usd_per_gpu_hour" not in _points()  # input untouched


def test_gpus_argument_overrides_column_and_tokens_fall_back_to_rates():
    df = _points().drop(columns=["output_tokens", "input_tokens"])
    out = add_cost_columns(df, Pricing(gpu=None, provider=None, usd_per_gpu_hour=3.6), gpus=1)
    assert out["gpu_cost_usd"][0] == pytest.approx(0.1)
    assert out["usd_per_1m_output"][0] == pytest.approx(0.1 / 200_000 * 1e6)


def test_unknown_price_gives_empty_columns():
    out = add_cost_columns(_points(), Pricing(gpu=None, provider=None))
    assert out["usd_per_1m_output"].isna().all()
    assert out["gpu_cost_usd"].isna().all()


def test_cheapest_slo_point():
    out = add_cost_columns(_points(), Pricing(gpu=None, provider=None, usd_per_gpu_hour=1.0))
    # point 2 is cheapest but misses the SLO
    assert cheapest_slo_point(out)["point"] == 1
    # no SLO set (empty column): every point counts
    out2 = out.assign(slo_met=[None, None, None])
    assert cheapest_slo_point(out2)["point"] == 2
    # no price: same ranking from output tokens/s per GPU
    assert cheapest_slo_point(_points())["point"] == 1
    # string booleans as read back from CSV
    assert cheapest_slo_point(out.assign(slo_met=["False", "True", "False"]))["point"] == 1
    assert cheapest_slo_point(out.assign(slo_met=[False, False, False])) is None
