"""Hardware and model specs the spec-driven performance model is built from (pure loaders, no I/O
beyond reading the shipped files).

- ``gpu_specs.csv``: one row per GPU, datasheet figures (HBM bandwidth, dense TFLOP/s per dtype,
  memory, TDP, interconnect bandwidth). ``profiler.cost.roofline`` reads the same file, so the
  speed-of-light bound and the mock use one table.
- ``models/*.json``: Hugging Face ``config.json`` shapes of common open-weight models, with an
  ``_inferprof`` block (name, aliases, parameter counts from the model card, source).
- ``efficiency.json``: the fitted efficiency terms (written by ``benchmarks/predict/fit.py``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from backends.errors import BackendError

SPECS_DIR = Path(__file__).resolve().parent
GPU_SPECS_CSV = SPECS_DIR / "gpu_specs.csv"
MODELS_DIR = SPECS_DIR / "models"
EFFICIENCY_JSON = SPECS_DIR / "efficiency.json"


@dataclass(frozen=True)
class GpuHw:
    """One GPU's datasheet figures (per GPU)."""

    gpu: str  # canonical id, e.g. h100-sxm
    nvml_name: str  # what nvmlDeviceGetName / dcgm-exporter's modelName shows
    memory_gb: float
    bandwidth_tbps: float
    bf16_tflops: float  # dense tensor
    fp8_tflops: float | None  # dense tensor; None = no FP8 tensor cores
    tdp_w: float
    idle_w: float
    sm_clock_idle_mhz: int
    sm_clock_max_mhz: int
    link_gbps: float  # GPU-to-GPU bandwidth per direction (NVLink, else PCIe)
    nvlink: bool = True  # False: TP traffic crosses PCIe (and often host memory)


@dataclass(frozen=True)
class Arch:
    """A transformer's shape. ``kv_values_per_layer`` = cached values per token per layer
    (2 x kv_heads x head_dim for MHA/GQA; 576 for DeepSeek's MLA latent)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    params: float
    active_params: float
    experts: int = 0
    experts_per_token: int = 0
    kv_values_per_layer: int = 0
    kv_split_by_tp: bool = True  # MLA's latent is replicated on every TP rank
    source: str = ""

    @property
    def kv_values(self) -> int:
        return self.kv_values_per_layer or 2 * self.kv_heads * self.head_dim


def _num(v: str) -> float | None:
    return None if v is None or not str(v).strip() else float(v)


@lru_cache(maxsize=1)
def gpu_table() -> dict[str, GpuHw]:
    out = {}
    with open(GPU_SPECS_CSV, newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["gpu"]] = GpuHw(
                gpu=r["gpu"], nvml_name=r["nvml_name"], memory_gb=float(r["memory_gb"]),
                bandwidth_tbps=float(r["bandwidth_tbps"]), bf16_tflops=float(r["bf16_dense_tflops"]),
                fp8_tflops=_num(r["fp8_dense_tflops"]), tdp_w=float(r["tdp_w"]), idle_w=float(r["idle_w"]),
                sm_clock_idle_mhz=int(r["sm_clock_idle_mhz"]), sm_clock_max_mhz=int(r["sm_clock_max_mhz"]),
                link_gbps=float(r["interconnect_gbps"]), nvlink=r["interconnect"].lower().startswith("nvlink"))
    return out


def gpu_hw(name: str) -> GpuHw:
    """A GPU by its table id (case-insensitive); BackendError listing the ids otherwise."""
    table = gpu_table()
    key = str(name).strip().lower()
    if key not in table:
        raise BackendError(f"unknown GPU {name!r}; known GPUs: {', '.join(table)}")
    return table[key]


def arch_from_hf_config(cfg: dict, name: str) -> Arch:
    """An Arch from a Hugging Face config.json dict. Parameter counts come from the ``_inferprof``
    block when present, else from the shapes (``count_params``)."""
    meta = cfg.get("_inferprof", {})
    cfg = cfg.get("text_config", cfg)
    layers = int(cfg["num_hidden_layers"])
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    k = int(cfg.get("num_experts_per_tok") or 0) if experts else 0
    kv_meta = meta.get("kv_cache", {})
    kv_values = int(kv_meta.get("per_layer_values", 0))
    split = bool(kv_meta.get("split_by_tp", True))
    if not kv_values and cfg.get("kv_lora_rank"):  # DeepSeek MLA: latent + rope key, shared by heads
        kv_values, split = int(cfg["kv_lora_rank"]) + int(cfg.get("qk_rope_head_dim") or 0), False
    total, active = count_params(cfg, layers, hidden, heads, kv_heads, head_dim, experts, k)
    return Arch(name=meta.get("name", name), layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
                head_dim=head_dim, params=float(meta.get("params", total)),
                active_params=float(meta.get("active_params", meta.get("params", active))),
                experts=experts if k else 0, experts_per_token=k, kv_values_per_layer=kv_values,
                kv_split_by_tp=split, source=meta.get("source", "estimated from config.json"))


def count_params(cfg: dict, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int,
                 experts: int, k: int) -> tuple[float, float]:
    """(total, active): embeddings (x2 unless tied) + layers x (attention + gated MLP); an MoE
    layer holds E expert MLPs (+ shared ones) of which k are active per token."""
    vocab = int(cfg.get("vocab_size", 32000))
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    attn = hidden * head_dim * (2 * heads + 2 * kv_heads)
    dense_mlp = 3 * hidden * int(cfg.get("intermediate_size") or 4 * hidden)
    if not (experts and k):
        n = embed + layers * (attn + dense_mlp)
        return float(n), float(n)
    expert_mlp = 3 * hidden * int(cfg.get("moe_intermediate_size") or cfg.get("intermediate_size"))
    shared = int(cfg.get("n_shared_experts") or 0) * expert_mlp
    dense_layers = int(cfg.get("first_k_dense_replace") or 0)
    moe_layers = layers - dense_layers
    base = embed + layers * attn + dense_layers * dense_mlp + moe_layers * shared
    return float(base + moe_layers * experts * expert_mlp), float(base + moe_layers * k * expert_mlp)


@lru_cache(maxsize=1)
def model_table() -> dict[str, Arch]:
    """Shipped models by lowercased name and alias."""
    out = {}
    for path in sorted(MODELS_DIR.glob("*.json")):
        cfg = json.loads(path.read_text())
        arch = arch_from_hf_config(cfg, path.stem)
        for key in [arch.name, *cfg["_inferprof"].get("aliases", [])]:
            out[key.lower()] = arch
    return out


def model_names() -> list[str]:
    return sorted({a.name for a in model_table().values()})


def load_arch(model: str) -> Arch:
    """A shipped model by name/alias, or a config.json path (file or folder holding one)."""
    path = Path(str(model)).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if path.is_file():
        try:
            return arch_from_hf_config(json.loads(path.read_text()), name=path.parent.name or path.stem)
        except (KeyError, ValueError, TypeError) as e:
            raise BackendError(f"{path}: not a usable Hugging Face config.json ({e})") from None
    arch = model_table().get(str(model).strip().lower())
    if arch is None:
        raise BackendError(f"unknown model {model!r}; give a config.json path or one of: "
                           f"{', '.join(model_names())}")
    return arch


DTYPE_BYTES = {"fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0}


def dtype_bytes(dtype: str, flag: str = "--dtype") -> float:
    key = str(dtype).strip().lower()
    if key not in DTYPE_BYTES:
        raise BackendError(f"{flag} {dtype!r}: choose one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[key]

