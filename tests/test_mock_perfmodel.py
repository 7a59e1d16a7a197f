"""The mock's performance/power model: calibration against measured TensorRT-LLM rows, engine
semantics, closed-loop expectations and the power integral."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backends.mock.engine import (
    BatchEngine,
    EngineRequest,
    expected_energy_per_output_token_j,
    expected_steady_state,
    simulate_closed_loop,
)
from backends.mock.perfmodel import (
    PRESETS,
    activity,
    decode_step_s,
    get_preset,
    power_w,
    static_batch_tpot_ms,
    static_batch_ttft_ms,
    step_s,
)
from backends.mock.specmodel import deployment, spec_preset

CALIBRATION = Path(__file__).resolve().parents[1] / "backends" / "mock" / "calibration.csv"
TOLERANCE = 0.25  # >= 90 % of the imitated rows within ±25 %


def calibration_rows() -> pd.DataFrame:
    return pd.read_csv(CALIBRATION, comment="#")


def test_calibration_file_covers_every_gpu_preset():
    df = calibration_rows()
    gpu_presets = {name for name in PRESETS if name != "tiny-cpu"}
    assert set(df["preset"]) == gpu_presets
    for name in gpu_presets:
        rows = df[df["preset"] == name]
        assert rows["batch"].nunique() >= 5, name
        assert rows["ttft_ms"].notna().sum() >= 15 and rows["tpot_ms"].notna().sum() >= 15, name


# The configuration each preset's calibration rows measured: the presets now serve Llama 3.1
# (GQA) through the spec model, and the same model for the rows' LLaMA v2 must reproduce them.
IMITATED = {"h100-llama3-8b": ("h100-sxm", "llama-2-7b", 1, "fp16"),
            "a100-llama3-8b": ("a100-80gb", "llama-2-7b", 1, "fp16"),
            "l40s-llama3-8b": ("l40s", "llama-2-7b", 1, "fp8"),
            "h100x8-llama3-70b": ("h100-sxm", "llama-2-70b", 8, "fp16")}


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "tiny-cpu"])
def test_spec_model_reproduces_the_measured_rows_of_each_preset(name):
    gpu, model, tp, dtype = IMITATED[name]
    preset = spec_preset(deployment(gpu, model, tp, dtype, kv_dtype=dtype))
    rows = calibration_rows()
    rows = rows[rows["preset"] == name]
    errors = []
    for r in rows.itertuples():
        if pd.notna(r.ttft_ms):
            pred = static_batch_ttft_ms(preset, r.batch, r.input_tokens)
            errors.append(("ttft", r.batch, r.input_tokens, r.output_tokens, pred / r.ttft_ms - 1))
        if pd.notna(r.tpot_ms):
            pred = static_batch_tpot_ms(preset, r.batch, r.input_tokens, r.output_tokens)
            errors.append(("tpot", r.batch, r.input_tokens, r.output_tokens, pred / r.tpot_ms - 1))
    rel = sorted(abs(e[-1]) for e in errors)
    assert len(errors) >= 30
    assert rel[len(rel) // 2] <= 0.10, f"{name}: median error {rel[len(rel) // 2]:.0%}"
    assert sum(x <= TOLERANCE for x in rel) >= 0.9 * len(rel), f"{name}: {errors}"
    bad = [e for e in errors if abs(e[-1]) > 0.35]
    assert not bad, f"{name}: rows outside ±35 %: {bad}"


def test_step_formula():
    p = get_preset("tiny-cpu", prefill_us_per_token=10.0, decode_base_ms=2.0, decode_per_seq_us=100.0,
                   decode_per_ctx_ns=50.0)
    # 1000 prefill tokens = 10 ms; 2 ms base; 4 seqs = 0.4 ms; 2000 ctx = 0.1 ms
    assert step_s(p, 1000, 4, 2000) == pytest.approx(0.0125)
    assert decode_step_s(p, 4, 2000) == pytest.approx(0.0025)


def test_engine_admits_by_kv_and_max_num_seqs_and_gives_first_token_at_prefill_step():
    p = get_preset("tiny-cpu", kv_tokens=100, max_num_seqs=2, max_num_batched_tokens=0)
    eng = BatchEngine(p)
    reqs = [EngineRequest(prompt_tokens=10, max_tokens=30, arrival_ns=0) for _ in range(3)]
    for r in reqs:
        eng.add(r)
    d1 = eng.start_step(0)
    # KV fits two (2 x 40 = 80 <= 100) and max_num_seqs is 2: the third waits
    assert [r.state for r in reqs] == ["running", "running", "waiting"]
    assert d1 == int(step_s(p, 20, 2, 20) * 1e9)
    emitted, finished = eng.finish_step(d1)
    assert emitted == reqs[:2] and not finished
    assert reqs[0].first_token_ns == d1 and reqs[0].generated == 1
    # the next step has no prefill and context grows by the token just generated
    d2 = eng.start_step(d1)
    assert d2 == int(step_s(p, 0, 2, 22) * 1e9)
    assert eng.kv_usage() == pytest.approx(0.8)


def test_engine_chunked_prefill_delays_first_token():
    p = get_preset("tiny-cpu", max_num_batched_tokens=100, kv_tokens=10_000, max_model_len=10_000)
    eng = BatchEngine(p)
    r = EngineRequest(prompt_tokens=250, max_tokens=2, arrival_ns=0)
    eng.add(r)
    t = 0
    steps = 0
    while r.generated == 0:
        t += eng.start_step(t)
        eng.finish_step(t)
        steps += 1
    assert steps == 3  # 100 + 100 + 50 prompt tokens


def test_engine_runs_to_completion_and_frees_kv():
    p = PRESETS["tiny-cpu"]
    eng = BatchEngine(p)
    reqs = [EngineRequest(5, 4, 0) for _ in range(3)]
    for r in reqs:
        eng.add(r)
    t = 0
    tokens = 0
    while not eng.idle:
        t += eng.start_step(t)
        emitted, _ = eng.finish_step(t)
        tokens += len(emitted)
    assert tokens == 12 and eng.kv_reserved == 0
    assert all(r.state == "finished" and r.generated == 4 for r in reqs)


def test_single_stream_steady_state_is_one_prefill_step_then_decode_steps():
    p = PRESETS["h100-llama3-8b"]
    ttft, itl, tput = expected_steady_state(p, 1, 128, 64)
    assert ttft == pytest.approx(step_s(p, 128, 1, 128), rel=1e-3)
    # context grows from 129 to 191 during decode: ITL between the decode steps at both ends
    assert decode_step_s(p, 1, 129) <= itl <= decode_step_s(p, 1, 192)
    e2e = ttft + 63 * itl
    assert tput == pytest.approx(64 / (e2e + 200e-6), rel=0.02)


def test_latency_and_throughput_rise_with_concurrency():
    p = PRESETS["h100-llama3-8b"]
    results = [expected_steady_state(p, n, 256, 128) for n in (1, 8, 64)]
    ttfts, itls, tputs = zip(*results, strict=True)
    assert ttfts[0] < ttfts[1] < ttfts[2]
    assert itls[0] < itls[1] < itls[2]
    assert tputs[0] < tputs[1] < tputs[2]


def test_kv_capacity_caps_the_batch_and_queues_the_rest():
    p = get_preset("tiny-cpu", kv_tokens=1000, max_model_len=1000)
    r4 = simulate_closed_loop(p, 4, 100, 100)  # 4 x 200 = 800 tokens: all fit
    r8 = simulate_closed_loop(p, 8, 100, 100)  # only 5 fit: the rest wait
    assert r8.output_tok_per_s == pytest.approx(r4.output_tok_per_s * 5 / 4, rel=0.15)
    assert r8.ttft_s > 5 * r4.ttft_s


def test_power_model_and_energy_per_token():
    p = PRESETS["h100-llama3-8b"]
    assert power_w(p, 0) == p.idle_w
    assert activity(p, 16) == pytest.approx(p.power_floor + (1 - p.power_floor) * 0.5)
    assert power_w(p, 1) < power_w(p, 16) < power_w(p, 256) < p.tdp_w
    res = simulate_closed_loop(p, 32, 128, 128)
    j = expected_energy_per_output_token_j(p, 32, 128, 128)
    assert j == pytest.approx(res.mean_power_w / res.output_tok_per_s)
    # a busy server draws close to power_w(32) all the time
    assert power_w(p, 1) < res.mean_power_w <= power_w(p, 32)
    big = PRESETS["h100x8-llama3-70b"]
    r70 = simulate_closed_loop(big, 32, 128, 128)
    assert expected_energy_per_output_token_j(big, 32, 128, 128) == pytest.approx(
        8 * r70.mean_power_w / r70.output_tok_per_s)
