"""Speed-of-light (roofline) bound on decode throughput.

For B sequences decoding together at mean context C on n GPUs (tensor parallel):

    memory bound   = B × BW_eff / (W_bytes(B) + B × KV_bytes_per_seq(C))   tokens/s
    compute bound  = FLOPs_eff / (2 × N_active)                             tokens/s
    sol            = min(memory bound, compute bound)

    BW_eff         = bandwidth_tbps × 1e12 × n × bw_efficiency
    FLOPs_eff      = dense TFLOP/s × 1e12 × n × flops_efficiency   (FP8 when weights are
                     <= 1 byte/param and the GPU has FP8, else BF16)
    KV_bytes_per_seq(C) = 2 × layers × kv_heads × head_dim × C × kv_bytes
    W_bytes(B)     = params × weight_bytes for dense models. For MoE (E experts, k per
                     token, uniform routing) only touched experts are read:
                     expert_all = (params − active) / (1 − k/E), dense = params − expert_all,
                     W_bytes(B) = (dense + expert_all × (1 − (1 − k/E)^B)) × weight_bytes

Efficiencies default to 1.0 (a true upper bound, "speed of light"); 0.8–0.9 of peak
bandwidth is what good kernels reach. Attention FLOPs and prefill are ignored, so the
bound is optimistic for long prompts. Example (facts.md §3): 7 GB of weights on an H100
(3.35 TB/s) at batch 1 → 7e9 / 3.35e12 = 2.09 ms per token → ≤ 479 tokens/s.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backends.mock.specs import GPU_SPECS_CSV  # one table for this bound and the mock's spec model
from profiler.errors import UserError
from profiler.runread import numeric

from .gpus import canonical_gpu

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_SPECS_CSV = DATA_DIR / "model_specs.csv"

SOL_COLUMNS = ("sol_batch", "sol_context_tokens", "sol_output_tok_per_s", "sol_fraction")


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet figures for one GPU (dense tensor TFLOP/s)."""

    gpu: str
    name: str
    memory_gb: float
    bandwidth_tbps: float
    bf16_dense_tflops: float
    fp8_dense_tflops: float | None
    tdp_w: float
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What the bound needs to know about a model. params/active_params are counts."""

    name: str
    params: float
    active_params: float
    layers: int
    kv_heads: int
    head_dim: int
    weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    num_experts: int = 0
    experts_per_token: int = 0
    source: str = ""

    def weight_bytes_read(self, batch: float = 1) -> float:
        """Bytes of weights read per decode step at batch B (MoE: touched experts only)."""
        e, k = self.num_experts, self.experts_per_token
        if e > 0 and 0 < k < e and self.params > self.active_params:
            f = k / e
            expert_all = (self.params - self.active_params) / (1 - f)
            dense = self.params - expert_all
            touched = 1 - (1 - f) ** max(float(batch), 1.0)
            return (dense + expert_all * touched) * self.weight_bytes
        return self.params * self.weight_bytes

    def kv_bytes_per_seq(self, context: float) -> float:
        """KV cache bytes read per step for one sequence: 2 × L × kv_heads × head_dim × C × kv_bytes."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * float(context) * self.kv_bytes


def _f(v: str | None) -> float | None:
    return None if v is None or str(v).strip() == "" else float(v)


def gpu_specs(path: Path | str = GPU_SPECS_CSV) -> dict[str, GpuSpec]:
    """All GPU specs keyed by canonical id."""
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["gpu"]] = GpuSpec(gpu=r["gpu"], name=r["name"], memory_gb=float(r["memory_gb"]),
                                    bandwidth_tbps=float(r["bandwidth_tbps"]),
                                    bf16_dense_tflops=float(r["bf16_dense_tflops"]),
                                    fp8_dense_tflops=_f(r.get("fp8_dense_tflops")),
                                    tdp_w=float(r["tdp_w"]), source=r.get("source", ""))
    return out


def gpu_spec(name: str) -> GpuSpec:
    """Spec of a GPU by any alias; ValueError listing the known ids."""
    specs = gpu_specs()
    gid = canonical_gpu(name) or str(name).strip().lower()
    if gid not in specs:
        raise UserError(f"no specs for GPU {name!r}; known GPUs: {', '.join(specs)}")
    return specs[gid]


def model_specs(path: Path | str = MODEL_SPECS_CSV) -> dict[str, ModelSpec]:
    """Shipped model table keyed by short name."""
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["model"]] = ModelSpec(
                name=r["model"], params=float(r["params_b"]) * 1e9, active_params=float(r["active_params_b"]) * 1e9,
                layers=int(r["layers"]), kv_heads=int(r["kv_heads"]), head_dim=int(r["head_dim"]),
                weight_bytes=float(r["weight_bytes"]), kv_bytes=float(r["kv_bytes"]),
                num_experts=int(r["num_experts"]), experts_per_token=int(r["experts_per_token"]),
                source=r.get("source", ""))
    return out


def _model_names(path: Path | str = MODEL_SPECS_CSV) -> dict[str, str]:
    names = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            names[r["model"].lower()] = r["model"]
            for n in r["names"].split("|"):
                if n.strip():
                    names[n.strip().lower()] = r["model"]
    return names


def _dtype_bytes(cfg: dict) -> float:
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    if "fp8" in method or "fp8" in str(q.get("fmt", "")).lower():
        return 1.0
    if "mxfp4" in method:
        return 0.53  # 4-bit values + shared 8-bit scale per 32
    if method in ("awq", "gptq"):
        return 0.5 + 0.03
    # transformers >= 4.56 writes "dtype"; older configs say "torch_dtype"
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    return {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}.get(str(dtype), 2.0)


def model_spec_from_hf_config(cfg: dict, name: str = "config.json") -> ModelSpec:
    """Estimate a ModelSpec from a Hugging Face config.json dict.

    params = embeddings (vocab × hidden, ×2 unless tied) + layers × (attention + MLP);
    attention = hidden × hd × (2 × heads + 2 × kv_heads); gated MLP = 3 × hidden × inter
    (2 × hidden × ffn_dim for OPT-style configs); MoE counts E experts for params and k
    for active params.
    """
    cfg = cfg.get("text_config", cfg)
    layers = int(cfg.get("num_hidden_layers") or cfg["n_layer"])
    hidden = int(cfg.get("hidden_size") or cfg["n_embd"])
    heads = int(cfg.get("num_attention_heads") or cfg["n_head"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = int(cfg.get("head_dim") or hidden // heads)
    vocab = int(cfg.get("vocab_size", 32000))
    tied = bool(cfg.get("tie_word_embeddings", False))
    attn = hidden * hd * (2 * heads + 2 * kv)
    n_exp = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    k = int(cfg.get("num_experts_per_tok") or 0)
    if "ffn_dim" in cfg and "intermediate_size" not in cfg:
        mlp_one = 2 * hidden * int(cfg["ffn_dim"])
    else:
        mlp_one = 3 * hidden * int(cfg.get("moe_intermediate_size") or cfg.get("intermediate_size") or 4 * hidden)
    embed = vocab * hidden * (1 if tied else 2)
    if n_exp and k:
        shared = int(cfg.get("n_shared_experts") or 0) * mlp_one
        total = embed + layers * (attn + n_exp * mlp_one + shared)
        active = embed + layers * (attn + k * mlp_one + shared)
    else:
        total = active = embed + layers * (attn + mlp_one)
        n_exp = k = 0
    return ModelSpec(name=name, params=float(total), active_params=float(active), layers=layers,
                     kv_heads=kv, head_dim=hd, weight_bytes=_dtype_bytes(cfg), kv_bytes=2.0,
                     num_experts=n_exp, experts_per_token=k, source="estimated from config.json")


def load_model_spec(model: str) -> ModelSpec:
    """ModelSpec from a config.json path (file or folder) or the shipped table.

    Table lookup matches the short name or any listed HF id, case-insensitively.
    ValueError (one line, with the known names) when neither works.
    """
    p = Path(model).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        p = p / "config.json"
    if p.is_file():
        try:
            return model_spec_from_hf_config(json.loads(p.read_text()), name=str(model))
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"{p}: cannot read model size from config.json ({e})") from None
    names = _model_names()
    key = names.get(str(model).strip().lower())
    if key is None:
        raise UserError(f"no size for model {model!r}; give a config.json path or one of: "
                         f"{', '.join(model_specs())}")
    return model_specs()[key]


def decode_bound_tok_per_s(model: ModelSpec, gpu: GpuSpec, batch: float, context: float,
                           n_gpus: float = 1, bw_efficiency: float = 1.0,
                           flops_efficiency: float = 1.0) -> float:
    """min(memory bound, compute bound) in output tokens/s (formulas in the module docstring)."""
    b = max(float(batch), 1.0)
    bw = gpu.bandwidth_tbps * 1e12 * n_gpus * bw_efficiency
    mem = b * bw / (model.weight_bytes_read(b) + b * model.kv_bytes_per_seq(max(float(context), 0.0)))
    tflops = gpu.fp8_dense_tflops if (model.weight_bytes <= 1 and gpu.fp8_dense_tflops) else gpu.bf16_dense_tflops
    compute = tflops * 1e12 * n_gpus * flops_efficiency / (2.0 * model.active_params)
    return min(mem, compute)



def point_batch(df: pd.DataFrame) -> pd.Series:
    """Decode batch per point: the concurrency in concurrency mode; otherwise Little's law
    on the decode phase, B ≈ output_tok_per_s × tpot_p50_ms / 1000 (at least 1)."""
    conc = numeric(df, "concurrency")
    little = (numeric(df, "output_tok_per_s") * numeric(df, "tpot_p50_ms") / 1000.0).clip(lower=1.0)
    return conc.where(conc > 0, little)


def point_context(df: pd.DataFrame) -> pd.Series:
    """Mean context during decode: input tokens per request + half the output tokens per request."""
    n = numeric(df, "ok").where(numeric(df, "ok") > 0)
    return (numeric(df, "input_tokens") / n).fillna(0) + (numeric(df, "output_tokens") / n).fillna(0) / 2.0


def add_sol_columns(points_df: pd.DataFrame, model: ModelSpec, gpu: GpuSpec, gpus: float | None = None,
                    bw_efficiency: float = 1.0) -> pd.DataFrame:
    """Copy with sol_batch, sol_context_tokens, sol_output_tok_per_s and
    sol_fraction = output_tok_per_s / sol_output_tok_per_s."""
    df = points_df.copy()
    g = numeric(df, "gpu_count") if gpus is None else pd.Series(float(gpus), index=df.index)
    g = g.where(g > 0, 1.0)
    b = point_batch(df)
    c = point_context(df)
    sol = [decode_bound_tok_per_s(model, gpu, bi, ci, gi, bw_efficiency) if math.isfinite(bi) else math.nan
           for bi, ci, gi in zip(b, c, g, strict=True)]
    df["sol_batch"] = b
    df["sol_context_tokens"] = c
    df["sol_output_tok_per_s"] = sol
    df["sol_fraction"] = numeric(df, "output_tok_per_s") / pd.Series(sol, index=df.index)
    return df
