"""Spec-driven performance model: (GPU, model, TP, weight dtype, KV dtype) -> the mock's per-step
cost terms (a ``perfmodel.Preset``), from datasheet figures and a few fitted efficiencies.

The engine's step time stays the linear form of ``perfmodel.step_s`` (so the hot path costs one
multiply-add per term); this module only computes its coefficients once per configuration. Per GPU
of a TP group (every GPU does 1/TP of the work, in parallel)::

    F    = min(max(dense FP8 TFLOP/s x eta_fp8, dense BF16 TFLOP/s), 2 x cap) if weights are
           <= 1 byte and the GPU has FP8, else min(dense BF16 TFLOP/s, cap);
           cap = tflops_per_w x TDP (sustained GEMMs run at power-limited clocks)
    BW   = HBM bandwidth x eta_bw (weights);  BW_kv = HBM bandwidth x eta_kv (attention)
    comm = 2 allreduces per layer of hidden x 2 bytes per token: 2 x L x 2(TP-1)/TP x hidden x 2 / link,
           x pcie_comm_x on GPUs without NVLink (so is the allreduce latency)

    prefill_us_per_token = 2 x N_active / TP / (eta_prefill x F) + comm
    decode_base_ms       = W_dense / TP / BW + step_ms + L x layer_us + [TP>1] x 2 x L x allreduce_us
    decode_per_seq_us    = 2 x N_active / TP / (eta_decode x F) + seq_us + comm
    decode_per_ctx_ns    = L x kv_values_per_rank x kv_bytes / BW_kv
    moe_expert_ms        = W_experts / TP / BW   (read in proportion 1 - (1 - k/E)^B, see perfmodel)

``W_dense``/``W_experts`` split the weights as in ``profiler.cost.roofline`` (uniform routing).
``kv_values_per_rank`` = kv_values / min(TP, kv_heads) (GQA heads are replicated, not split, past
TP = kv_heads; DeepSeek's MLA latent is never split).

KV capacity (tokens per replica) = (mem_util x memory - W / TP - reserve_gb, in GiB as nvidia-smi counts) / (KV bytes per token
per rank); a configuration whose weights do not fit is refused.

Efficiencies (``Efficiency``) are fitted once on public measurements by ``benchmarks/predict/fit.py``
and shipped in ``specs/efficiency.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from backends.errors import BackendError
from backends.mock.perfmodel import Preset
from backends.mock.specs import EFFICIENCY_JSON, Arch, GpuHw, dtype_bytes, gpu_hw, load_arch

GIB = 2**30


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of the datasheet and fixed costs (fitted; see module docstring)."""

    eta_bw: float = 0.75  # HBM bandwidth reached by weight reads (GEMV/GEMM)
    eta_kv: float = 0.6  # HBM bandwidth reached by attention's KV-cache reads (paged attention)
    eta_prefill: float = 0.5  # dense FLOP/s reached by prefill GEMMs
    eta_decode: float = 0.3  # dense FLOP/s reached by decode GEMMs at large batch
    eta_fp8: float = 0.7  # FP8 GEMMs reach this share of the FP8/BF16 peak ratio (scales, casts)
    tflops_per_w: float = 1.5  # sustained dense BF16 TFLOP/s per W of TDP (x2 for FP8): power cap
    step_ms: float = 1.0  # per engine step (scheduler, sampling launch, Python)
    layer_us: float = 10.0  # per layer per step (kernel launches)
    allreduce_us: float = 8.0  # latency of one allreduce (2 per layer per step when TP > 1)
    seq_us: float = 5.0  # per sequence per step (sampling, detokenisation, bookkeeping)
    pcie_comm_x: float = 3.0  # TP traffic over PCIe: slower than its link rate (host-staged, shared)
    mem_util: float = 0.90  # vLLM --gpu-memory-utilization
    reserve_gb: float = 2.0  # activations, CUDA graphs, workspace per GPU


@dataclass(frozen=True)
class Deployment:
    gpu: GpuHw
    arch: Arch
    tp: int
    weight_bytes: float
    kv_bytes: float

    @property
    def label(self) -> str:
        wd = "fp8" if self.weight_bytes <= 1 else "fp16"
        return f"{self.gpu.gpu} x{self.tp} {self.arch.name} {wd}"


def load_efficiency(path=EFFICIENCY_JSON) -> Efficiency:
    """The shipped fitted terms (defaults where the file lacks a field or does not exist)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Efficiency()
    names = {f.name for f in fields(Efficiency)}
    return Efficiency(**{k: float(v) for k, v in raw.get("efficiency", raw).items() if k in names})


def deployment(gpu: str, model: str, tp: int = 1, dtype: str = "bf16", kv_dtype: str | None = None) -> Deployment:
    """Resolve names (BackendError on unknown GPU/model/dtype or a bad TP size)."""
    if not isinstance(tp, int) or tp < 1 or tp > 64:
        raise BackendError(f"--tp {tp!r}: must be an integer 1..64")
    wb = dtype_bytes(dtype)
    kvb = dtype_bytes(kv_dtype, "--kv-dtype") if kv_dtype else 2.0
    return Deployment(gpu=gpu_hw(gpu), arch=load_arch(model), tp=tp, weight_bytes=wb, kv_bytes=kvb)


def flops(d: Deployment, eff: Efficiency) -> float:
    """Dense FLOP/s per GPU used by the GEMMs: FP8 (x eta_fp8) when weights are 8-bit and the GPU
    has FP8 tensor cores, else BF16 (8-bit weights on an A100 are dequantised to BF16); either is
    capped by the power limit (``tflops_per_w`` x TDP, twice that for FP8)."""
    cap = eff.tflops_per_w * d.gpu.tdp_w
    if d.weight_bytes <= 1 and d.gpu.fp8_tflops:
        return min(max(d.gpu.fp8_tflops * eff.eta_fp8, d.gpu.bf16_tflops), 2 * cap) * 1e12
    return min(d.gpu.bf16_tflops, cap) * 1e12


def weight_split(d: Deployment) -> tuple[float, float]:
    """(dense bytes, all-expert bytes) of the whole model."""
    a = d.arch
    if a.experts and 0 < a.experts_per_token < a.experts and a.params > a.active_params:
        f = a.experts_per_token / a.experts
        experts = (a.params - a.active_params) / (1 - f)
        return (a.params - experts) * d.weight_bytes, experts * d.weight_bytes
    return a.params * d.weight_bytes, 0.0


def kv_bytes_per_token_rank(d: Deployment) -> float:
    a = d.arch
    split = min(d.tp, a.kv_heads) if a.kv_split_by_tp else 1
    return a.layers * a.kv_values / max(split, 1) * d.kv_bytes


def comm_scale(d: Deployment, eff: Efficiency) -> float:
    """1 over NVLink; ``pcie_comm_x`` where TP traffic crosses PCIe."""
    return 1.0 if d.gpu.nvlink else eff.pcie_comm_x


def comm_s_per_token(d: Deployment, eff: Efficiency) -> float:
    if d.tp == 1:
        return 0.0
    ring = 2 * d.arch.layers * 2 * (d.tp - 1) / d.tp * d.arch.hidden * 2 / (d.gpu.link_gbps * 1e9)
    return ring * comm_scale(d, eff)


def kv_capacity_tokens(d: Deployment, eff: Efficiency) -> int:
    """KV-cache tokens per replica; BackendError when the weights do not fit."""
    w = sum(weight_split(d))
    free = eff.mem_util * d.gpu.memory_gb * GIB - w / d.tp - eff.reserve_gb * GIB
    if free <= 0:
        need = (w / d.tp + eff.reserve_gb * GIB) / eff.mem_util / GIB
        hint = "raise --tp" if d.weight_bytes <= 1 else "raise --tp or use fp8"
        raise BackendError(f"{d.label}: weights do not fit ({need:.0f} GB needed per GPU, "
                           f"{d.gpu.memory_gb:g} GB available); {hint}")
    return int(free / kv_bytes_per_token_rank(d))


@dataclass(frozen=True)
class StepTerms:
    prefill_us_per_token: float
    decode_base_ms: float
    decode_per_seq_us: float
    decode_per_ctx_ns: float
    moe_expert_ms: float
    moe_fraction: float
    kv_tokens: int


def step_terms(d: Deployment, eff: Efficiency) -> StepTerms:
    """The coefficients of ``perfmodel.step_s`` for this deployment (module docstring)."""
    a, tp = d.arch, d.tp
    bw = d.gpu.bandwidth_tbps * 1e12 * eff.eta_bw
    f = flops(d, eff)
    dense, experts = weight_split(d)
    comm = comm_s_per_token(d, eff)
    sync = 2 * a.layers * eff.allreduce_us * 1e-6 * comm_scale(d, eff) if tp > 1 else 0.0
    return StepTerms(
        prefill_us_per_token=1e6 * (2 * a.active_params / tp / (eff.eta_prefill * f) + comm),
        decode_base_ms=1e3 * (dense / tp / bw + eff.step_ms * 1e-3 + a.layers * eff.layer_us * 1e-6 + sync),
        decode_per_seq_us=1e6 * (2 * a.active_params / tp / (eff.eta_decode * f) + comm) + eff.seq_us,
        decode_per_ctx_ns=1e9 * kv_bytes_per_token_rank(d) / (d.gpu.bandwidth_tbps * 1e12 * eff.eta_kv),
        moe_expert_ms=1e3 * experts / tp / bw,
        moe_fraction=a.experts_per_token / a.experts if experts else 0.0,
        kv_tokens=kv_capacity_tokens(d, eff),
    )


def spec_preset(d: Deployment, eff: Efficiency | None = None, name: str = "", served_model: str = "",
                max_num_seqs: int = 256, max_num_batched_tokens: int = 8192, max_model_len: int = 8192) -> Preset:
    """A mock Preset for this deployment: spec-derived step terms, the GPU's telemetry figures."""
    eff = eff or load_efficiency()
    t = step_terms(d, eff)
    g = d.gpu
    return Preset(
        name=name or d.label.replace(" ", "-"), gpu_name=g.nvml_name, gpus=d.tp, model=served_model or d.arch.name,
        prefill_us_per_token=t.prefill_us_per_token, decode_base_ms=t.decode_base_ms,
        decode_per_seq_us=t.decode_per_seq_us, decode_per_ctx_ns=t.decode_per_ctx_ns, kv_tokens=t.kv_tokens,
        max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=min(max_model_len, t.kv_tokens), idle_w=g.idle_w, tdp_w=g.tdp_w, power_floor=0.25,
        power_half_batch=16.0, fb_total_mib=int(g.memory_gb * 1024), sm_clock_idle_mhz=g.sm_clock_idle_mhz,
        sm_clock_max_mhz=g.sm_clock_max_mhz, imitates=f"spec model: {d.label} (kv {d.kv_bytes:g} B)",
        moe_expert_ms=t.moe_expert_ms, moe_fraction=t.moe_fraction,
    )


def efficiency_dict(eff: Efficiency) -> dict:
    return asdict(eff)


def server_preset(gpu: str, model: str, tp: int = 1, dtype: str = "bf16", kv_dtype: str = "bf16") -> Preset:
    """The mock server's preset for ``--gpu``: the spec model, served under ``--model`` (``mock-llm``,
    the server's default name, means Llama 3.1 8B)."""
    spec_model = "llama-3.1-8b" if model == "mock-llm" else model
    return spec_preset(deployment(gpu, spec_model, tp, dtype, kv_dtype), served_model=model)


# The mock's GPU presets are these tuples of the spec model. perfmodel.py holds the resulting
# numbers as literals (it may not import this module, and the hot path reads plain fields);
# tests/test_specmodel.py checks they match, and `python3 -m backends.mock.specmodel` prints them
# after a refit.
PRESET_SPECS: dict[str, tuple[str, str, int, str]] = {
    "h100-llama3-8b": ("h100-sxm", "llama-3.1-8b", 1, "bf16"),
    "a100-llama3-8b": ("a100-80gb", "llama-3.1-8b", 1, "bf16"),
    "l40s-llama3-8b": ("l40s", "llama-3.1-8b", 1, "fp8"),
    "h100x8-llama3-70b": ("h100-sxm", "llama-3.1-70b", 8, "bf16"),
}
PRESET_FIELDS = ("prefill_us_per_token", "decode_base_ms", "decode_per_seq_us", "decode_per_ctx_ns", "kv_tokens")


def preset_literals(eff: Efficiency | None = None) -> dict[str, dict[str, float]]:
    """The perfmodel.PRESETS numbers each preset's tuple gives (4 significant digits)."""
    out = {}
    for name, (gpu, model, tp, dtype) in PRESET_SPECS.items():
        t = step_terms(deployment(gpu, model, tp, dtype), eff or load_efficiency())
        out[name] = {f: (int(round(getattr(t, f), -3)) if f == "kv_tokens" else float(f"{getattr(t, f):.4g}"))
                     for f in PRESET_FIELDS}
    return out


if __name__ == "__main__":
    for preset_name, values in preset_literals().items():
        print(preset_name, values)
