"""The spec-driven performance model: it moves the right way with each spec, its presets are the
literals perfmodel serves, its closed forms agree with the engine, and configs load."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backends.errors import BackendError
from backends.mock import steady
from backends.mock.engine import simulate_closed_loop
from backends.mock.perfmodel import PRESETS, decode_step_s
from backends.mock.specmodel import (
    PRESET_FIELDS,
    Efficiency,
    deployment,
    kv_capacity_tokens,
    load_efficiency,
    preset_literals,
    spec_preset,
    step_terms,
)
from backends.mock.specs import gpu_hw, load_arch, model_names
from profiler.cost.roofline import gpu_spec


def closed(dep, n, i, o):
    return [float(v) for v in steady.closed_loop(spec_preset(dep), n, i, o)]


def test_more_bandwidth_lowers_itl():
    h100 = deployment("h100-sxm", "llama-3.1-8b")
    h200 = deployment("h200", "llama-3.1-8b")  # same FLOP/s, 4.8 vs 3.35 TB/s
    assert gpu_hw("h200").bf16_tflops == gpu_hw("h100-sxm").bf16_tflops
    for n in (1, 16, 64):
        assert closed(h200, n, 512, 256)[1] < closed(h100, n, 512, 256)[1]
    faster = replace(h100, gpu=replace(h100.gpu, bandwidth_tbps=2 * h100.gpu.bandwidth_tbps))
    assert closed(faster, 1, 512, 256)[1] < 0.7 * closed(h100, 1, 512, 256)[1]


def test_gqa_means_more_kv_capacity_and_more_throughput_at_long_context():
    gqa = deployment("h100-sxm", "llama-3.1-8b")
    arch = gqa.arch
    mha = replace(gqa, arch=replace(arch, kv_heads=arch.heads))  # the same model without GQA
    eff = load_efficiency()
    assert kv_capacity_tokens(gqa, eff) > 3 * kv_capacity_tokens(mha, eff)
    assert closed(gqa, 256, 4000, 500)[2] > 1.5 * closed(mha, 256, 4000, 500)[2]


def test_fp8_weights_lower_itl_at_small_batch():
    for gpu in ("h100-sxm", "l40s", "a100-80gb"):  # A100: weight-only FP8, bytes still halve
        bf16 = closed(deployment(gpu, "llama-3.1-8b", 1, "bf16"), 1, 512, 256)[1]
        fp8 = closed(deployment(gpu, "llama-3.1-8b", 1, "fp8"), 1, 512, 256)[1]
        assert fp8 < 0.8 * bf16, gpu


def test_tp2_lowers_itl_but_throughput_per_gpu_drops():
    tp1 = deployment("h100-sxm", "llama-3.1-8b", 1)
    tp2 = deployment("h100-sxm", "llama-3.1-8b", 2)
    for n in (1, 32):
        t1, t2 = closed(tp1, n, 512, 256), closed(tp2, n, 512, 256)
        assert t2[1] < t1[1]
        assert t2[2] < 2 * t1[2]  # less than 2x the replica's throughput on 2x the GPUs
    # 70B on H200s (room for the KV cache at TP 2): TP 4 wins latency, not tokens per GPU. On 80 GB
    # H100s TP 2 leaves ~5 GB per GPU for KV, so there TP 4 can win both (batch-capped TP 2).
    a, b = (closed(deployment("h200", "llama-3.1-70b", tp), 16, 512, 256) for tp in (2, 4))
    assert b[1] < a[1] and b[2] / 4 < a[2] / 2


def test_moe_reads_more_experts_as_the_batch_grows():
    p = spec_preset(deployment("h200", "mixtral-8x7b", 1, "fp8"))
    assert p.moe_fraction == pytest.approx(2 / 8) and p.moe_expert_ms > 0
    step1, step8 = decode_step_s(p, 1, 0), decode_step_s(p, 8, 0)
    dense = replace(p, moe_expert_ms=0.0)
    assert step8 - decode_step_s(dense, 8, 0) > 2.5 * (step1 - decode_step_s(dense, 1, 0))


def test_weights_that_do_not_fit_are_refused_in_one_line():
    with pytest.raises(BackendError, match="weights do not fit.*raise --tp"):
        spec_preset(deployment("l40s", "llama-3.1-70b", 1, "bf16"))
    spec_preset(deployment("l40s", "llama-3.1-70b", 4, "fp8"))  # fits


@pytest.mark.parametrize(("args", "needle"), [
    (("tpu-v5", "llama-3.1-8b"), "known GPUs: h100-sxm"),
    (("h100-sxm", "gpt-5"), "one of: deepseek-v3"),
    (("h100-sxm", "llama-3.1-8b", 0), "--tp"),
    (("h100-sxm", "llama-3.1-8b", 1, "int4"), "--dtype"),
])
def test_bad_names_are_backend_errors(args, needle):
    with pytest.raises(BackendError, match=needle):
        deployment(*args)


def test_presets_are_the_spec_model_tuples():
    lit = preset_literals()
    for name, values in lit.items():
        for field in PRESET_FIELDS:
            assert getattr(PRESETS[name], field) == pytest.approx(values[field], rel=2e-3), (name, field)


def test_one_gpu_table_for_the_roofline_and_the_spec_model():
    for gid in ("h100-sxm", "h200", "a100-80gb", "l40s"):
        assert gpu_spec(gid).bandwidth_tbps == gpu_hw(gid).bandwidth_tbps
        assert gpu_spec(gid).bf16_dense_tflops == gpu_hw(gid).bf16_tflops


def test_closed_forms_agree_with_the_engine_simulation():
    p = spec_preset(deployment("h100-sxm", "llama-3.1-8b"))
    for n, i, o in ((1, 128, 64), (8, 512, 128), (32, 256, 64)):
        sim = simulate_closed_loop(p, n, i, o)
        ttft, itl, x = (float(v) for v in steady.closed_loop(p, n, i, o))
        assert x == pytest.approx(sim.output_tok_per_s, rel=0.08)
        assert itl == pytest.approx(sim.itl_s, rel=0.12)
        assert ttft == pytest.approx(sim.ttft_s, rel=0.12)


def test_shipped_models_and_a_config_json_from_disk(tmp_path):
    assert {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b",
            "deepseek-v3"} <= set(model_names())
    assert load_arch("meta-llama/Llama-3.1-70B-Instruct").name == "llama-3.1-70b"
    ds = load_arch("deepseek-v3")
    assert ds.kv_values == 576 and not ds.kv_split_by_tp  # MLA latent, replicated across TP
    cfg = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = load_arch(str(tmp_path))
    assert arch.params == pytest.approx(8.03e9, rel=0.01) and arch.kv_heads == 8
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(BackendError, match="not a usable"):
        load_arch(str(tmp_path / "bad.json"))


def test_fitted_terms_are_physical():
    eff = load_efficiency()
    assert eff != Efficiency()  # the shipped file was read
    for name in ("eta_bw", "eta_kv", "eta_prefill", "eta_decode", "eta_fp8"):
        assert 0 < getattr(eff, name) <= 1, name
    t = step_terms(deployment("h100-sxm", "llama-2-7b", 1, "fp16"), eff)
    # batch-1 decode of 13.5 GB of weights at 3.35 TB/s is at least 4.0 ms
    assert t.decode_base_ms >= 13.48e9 / 3.35e12 * 1e3


def test_tensor_parallel_over_pcie_costs_more_than_over_nvlink():
    pcie = deployment("l40s", "llama-3.1-70b", 4, "fp8")
    assert not pcie.gpu.nvlink and gpu_hw("h100-sxm").nvlink
    nvlink = replace(pcie, gpu=replace(pcie.gpu, nvlink=True))
    assert closed(pcie, 16, 512, 256)[1] > closed(nvlink, 16, 512, 256)[1]
    assert closed(pcie, 16, 512, 256)[0] > closed(nvlink, 16, 512, 256)[0]
