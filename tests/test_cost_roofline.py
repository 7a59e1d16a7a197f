"""Speed-of-light bound against hand-computed figures."""

import json

import pandas as pd
import pytest

from profiler.cost.roofline import (
    ModelSpec,
    add_sol_columns,
    decode_bound_tok_per_s,
    gpu_spec,
    gpu_specs,
    load_model_spec,
)


def test_gpu_specs_table():
    specs = gpu_specs()
    assert {"h100-sxm", "h200", "b200", "a100-40gb", "a100-80gb", "l40s", "l4", "a10g"} <= set(specs)
    h = gpu_spec("NVIDIA H100 80GB HBM3")
    assert (h.bandwidth_tbps, h.bf16_dense_tflops, h.fp8_dense_tflops, h.tdp_w) == (3.35, 989, 1979, 700)
    assert gpu_spec("a100-80gb").fp8_dense_tflops is None
    assert all(s.source for s in specs.values())
    with pytest.raises(ValueError, match="known GPUs: h100-sxm"):
        gpu_spec("tpu-v5e")


def test_facts_example_7gb_weights_on_h100_batch_1():
    # facts.md §3: 7 GB weights / 3.35 TB/s ≈ 2.1 ms per token
    m = ModelSpec(name="7b-8bit", params=7e9, active_params=7e9, layers=32, kv_heads=32, head_dim=128,
                  weight_bytes=1.0)
    tok_s = decode_bound_tok_per_s(m, gpu_spec("h100-sxm"), batch=1, context=0)
    assert 1000 / tok_s == pytest.approx(2.09, abs=0.01)
    # the shipped LLaMA 2 7B is BF16: 13.5 GB → 4.0 ms per token
    llama2 = load_model_spec("meta-llama/Llama-2-7b-hf")
    assert 1000 / decode_bound_tok_per_s(llama2, gpu_spec("h100-sxm"), 1, 0) == pytest.approx(4.02, abs=0.01)


def test_kv_cache_batch_tp_and_compute_cap():
    m = load_model_spec("llama-2-7b")
    # KV per sequence at 1000 tokens: 2 × 32 layers × 32 heads × 128 × 1000 × 2 B = 524.288 MB
    assert m.kv_bytes_per_seq(1000) == pytest.approx(524_288_000)
    h = gpu_spec("h100-sxm")
    b16 = decode_bound_tok_per_s(m, h, 16, 1000)
    assert b16 == pytest.approx(16 * 3.35e12 / (6.74e9 * 2 + 16 * 524_288_000))
    assert decode_bound_tok_per_s(m, h, 16, 1000, n_gpus=2) == pytest.approx(2 * b16)
    assert decode_bound_tok_per_s(m, h, 16, 1000, bw_efficiency=0.8) == pytest.approx(0.8 * b16)
    # huge batch, no context: compute bound = 989e12 / (2 × 6.74e9) = 73,368 tok/s
    assert decode_bound_tok_per_s(m, h, 1e6, 0) == pytest.approx(989e12 / (2 * 6.74e9))


def test_moe_reads_only_touched_experts():
    m = load_model_spec("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert m.weight_bytes_read(1) == pytest.approx(12.9e9 * 2)  # active params at batch 1
    assert m.weight_bytes_read(1000) == pytest.approx(46.7e9 * 2, rel=1e-6)  # all experts
    assert m.weight_bytes_read(1) < m.weight_bytes_read(4) < m.weight_bytes_read(64)


def test_config_json(tmp_path):
    cfg = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = load_model_spec(str(tmp_path))
    # embeddings 2 × 128256 × 4096 + 32 × (4096 × 128 × 80 + 3 × 4096 × 14336) = 8,029,995,008
    assert m.params == 8_029_995_008
    assert (m.layers, m.kv_heads, m.head_dim, m.weight_bytes) == (32, 8, 128, 2.0)
    with pytest.raises(ValueError, match="known"):
        load_model_spec("nobody/unknown-model")


def test_add_sol_columns():
    m = ModelSpec(name="m", params=7e9, active_params=7e9, layers=1, kv_heads=1, head_dim=1, weight_bytes=1.0)
    df = pd.DataFrame({"mode": ["concurrency", "rate"], "concurrency": [1, None], "ok": [10, 10],
                       "input_tokens": [0, 0], "output_tokens": [0, 0],
                       "output_tok_per_s": [239.29, 1000.0], "tpot_p50_ms": [4.0, 4.0]})
    out = add_sol_columns(df, m, gpu_spec("h100-sxm"), gpus=1)
    assert out["sol_output_tok_per_s"][0] == pytest.approx(3.35e12 / 7e9)  # 478.6 tok/s
    assert out["sol_fraction"][0] == pytest.approx(0.5, abs=1e-3)
    # rate mode: batch from Little's law, 1000 tok/s × 4 ms = 4 sequences
    assert out["sol_batch"][1] == pytest.approx(4.0)
