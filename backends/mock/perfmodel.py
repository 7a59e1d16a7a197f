"""Performance and power model of one continuous-batching GPU inference server (pure, no I/O).

Imports nothing from the mock: ``engine`` builds on it, and closed-loop expectations
(``expected_steady_state``) live there with the engine they run.

Step time of one engine iteration (vLLM-style continuous batching, chunked prefill)::

    step_s = prefill_us_per_token * 1e-6 * P                      (prompt tokens prefilled this step)
           + decode_base_ms * 1e-3
           + decode_per_seq_us * 1e-6 * B                         (sequences in the batch)
           + decode_per_ctx_ns * 1e-9 * C                         (sum of context tokens of the batch)
           + moe_expert_ms * 1e-3 * (1 - (1 - moe_fraction)^B)    (MoE presets only: experts touched)

At the end of a step every running request whose prompt is fully prefilled gets one token; a request
whose prefill completes in this step gets its first token at the end of this step.

Power of each GPU (W), a saturating function of the running batch ``n``::

    activity(n) = 0                                               if n == 0
                = floor + (1 - floor) * n / (n + half_batch)      otherwise
    power_w(n)  = idle_w + (tdp_w - idle_w) * activity(n)

so energy over an interval is the exact integral of this piecewise-constant power
(``energy_j = sum(power_w(n_i) * dt_i)``) and, in a steady state with ``n`` requests running,
``energy per output token = gpus * power_w(n) / output_tok_per_s``.

Calibration: the GPU presets are (GPU, model, TP, dtype) tuples of the spec model
(``specmodel.PRESET_SPECS``); their numbers below are that model's output, kept as literals so this
module stays free of imports and the hot path reads plain fields. ``calibration.csv`` holds the
TensorRT-LLM 0.9.0 static-batch rows the earlier hand-fitted presets imitated; the spec model of the
same (GPU, LLaMA v2, TP, dtype) still reproduces them (tests/test_mock_perfmodel.py). For a static
batch of ``B`` requests with input ``I`` and output ``O`` tokens::

    ttft_ms(B, I) = step time with P = B*I, batch B, context B*I
    tpot_ms(B, I, O) = decode step with batch B and context B*(I + O/2)   (no prefill)
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """One simulated server: GPU, model and engine limits. Times per engine step."""

    name: str
    gpu_name: str  # as NVML / dcgm-exporter modelName would show it
    gpus: int  # tensor-parallel size; each GPU is exposed in the telemetry
    model: str
    prefill_us_per_token: float
    decode_base_ms: float
    decode_per_seq_us: float
    decode_per_ctx_ns: float
    kv_tokens: int  # KV-cache capacity in tokens (whole replica)
    max_num_seqs: int
    max_num_batched_tokens: int  # per-step token budget (chunked prefill); 0 = unlimited
    max_model_len: int
    idle_w: float  # per GPU
    tdp_w: float  # per GPU
    power_floor: float  # activity of a GPU running any batch at all
    power_half_batch: float  # batch size at which the batch term reaches half
    fb_total_mib: int  # per GPU
    sm_clock_idle_mhz: int
    sm_clock_max_mhz: int
    imitates: str  # which measured rows it reproduces
    # MoE: time to read every expert's weights once; a step at batch B reads the share
    # 1 - (1 - moe_fraction)^B of them (uniform routing of k of E experts, moe_fraction = k/E)
    moe_expert_ms: float = 0.0
    moe_fraction: float = 0.0


# What a preset takes from its GPU (per GPU, as NVML / dcgm-exporter would show it).
_H100 = {"gpu_name": "NVIDIA H100 80GB HBM3", "idle_w": 70.0, "tdp_w": 700.0, "fb_total_mib": 81_559,
         "sm_clock_idle_mhz": 345, "sm_clock_max_mhz": 1980}
_A100 = {"gpu_name": "NVIDIA A100-SXM4-80GB", "idle_w": 60.0, "tdp_w": 400.0, "fb_total_mib": 81_920,
         "sm_clock_idle_mhz": 210, "sm_clock_max_mhz": 1410}
_L40S = {"gpu_name": "NVIDIA L40S", "idle_w": 35.0, "tdp_w": 350.0, "fb_total_mib": 46_068,
         "sm_clock_idle_mhz": 210, "sm_clock_max_mhz": 2520}
# Engine limits and power-curve shape shared by every GPU preset (vLLM serving an 8k context).
_ENGINE_8K = {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "max_model_len": 8192,
              "power_floor": 0.25, "power_half_batch": 16.0}
_LLAMA3_8B = "meta-llama/Llama-3.1-8B-Instruct"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="h100-llama3-8b",
            gpus=1,
            model=_LLAMA3_8B,
            prefill_us_per_token=28.0,
            decode_base_ms=7.846,
            decode_per_seq_us=28.32,
            decode_per_ctx_ns=42.53,
            kv_tokens=451_000,
            imitates="spec model h100-sxm x1 llama-3.1-8b bf16 (backends/mock/specmodel.py PRESET_SPECS)",
            **_H100,
            **_ENGINE_8K,
        ),
        Preset(
            name="a100-llama3-8b",
            gpus=1,
            model=_LLAMA3_8B,
            prefill_us_per_token=74.2,
            decode_base_ms=11.35,
            decode_per_seq_us=65.61,
            decode_per_ctx_ns=69.87,
            kv_tokens=451_000,
            imitates="spec model a100-80gb x1 llama-3.1-8b bf16 (backends/mock/specmodel.py PRESET_SPECS)",
            **_A100,
            **_ENGINE_8K,
        ),
        Preset(
            name="l40s-llama3-8b",
            gpus=1,
            model=_LLAMA3_8B,
            prefill_us_per_token=36.09,
            decode_base_ms=12.97,
            decode_per_seq_us=34.85,
            decode_per_ctx_ns=164.9,
            kv_tokens=276_000,
            imitates="spec model l40s x1 llama-3.1-8b fp8 (backends/mock/specmodel.py PRESET_SPECS)",
            **_L40S,
            **_ENGINE_8K,
        ),
        Preset(
            name="h100x8-llama3-70b",
            gpus=8,
            model="meta-llama/Llama-3.1-70B-Instruct",
            prefill_us_per_token=40.97,
            decode_base_ms=16.19,
            decode_per_seq_us=40.75,
            decode_per_ctx_ns=13.29,
            kv_tokens=1_404_000,
            imitates="spec model h100-sxm x8 llama-3.1-70b bf16 (backends/mock/specmodel.py PRESET_SPECS)",
            **_H100,
            **_ENGINE_8K,
        ),
        Preset(
            name="tiny-cpu",
            gpu_name="Mock GPU (tiny-cpu)",
            gpus=1,
            model="mock-llm",
            prefill_us_per_token=5.0,
            decode_base_ms=2.0,
            decode_per_seq_us=50.0,
            decode_per_ctx_ns=0.0,
            kv_tokens=16_384,
            max_num_seqs=64,
            max_num_batched_tokens=4096,
            max_model_len=4096,
            idle_w=50.0,
            tdp_w=300.0,
            power_floor=0.25,
            power_half_batch=8.0,
            fb_total_mib=16_384,
            sm_clock_idle_mhz=300,
            sm_clock_max_mhz=1500,
            imitates="nothing: fast steps for tests",
        ),
    )
}

MOCK_DEFAULT_PRESET = "tiny-cpu"  # `inferprof mock-server` / `python -m backends.mock`


def get_preset(name: str, **overrides: float | int | None) -> Preset:
    """The named preset with any non-None field overridden (KeyError if the name is unknown)."""
    preset = PRESETS[name]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(preset, **changes) if changes else preset


def prefill_s(preset: Preset, prompt_tokens: int) -> float:
    """``prefill_us_per_token * 1e-6 * prompt_tokens``."""
    return preset.prefill_us_per_token * 1e-6 * prompt_tokens


def decode_step_s(preset: Preset, batch: int, context_tokens: int) -> float:
    """``decode_base_ms*1e-3 + decode_per_seq_us*1e-6*batch + decode_per_ctx_ns*1e-9*context_tokens``
    (+ ``moe_expert_ms*1e-3*(1 - (1 - moe_fraction)**batch)`` for an MoE preset)."""
    t = (
        preset.decode_base_ms * 1e-3
        + preset.decode_per_seq_us * 1e-6 * batch
        + preset.decode_per_ctx_ns * 1e-9 * context_tokens
    )
    if preset.moe_expert_ms:
        t += preset.moe_expert_ms * 1e-3 * (1.0 - (1.0 - preset.moe_fraction) ** max(batch, 1))
    return t


def step_s(preset: Preset, prefill_tokens: int, batch: int, context_tokens: int) -> float:
    """One engine iteration: ``prefill_s(prefill_tokens) + decode_step_s(batch, context_tokens)``."""
    return prefill_s(preset, prefill_tokens) + decode_step_s(preset, batch, context_tokens)


def static_batch_ttft_ms(preset: Preset, batch: int, input_tokens: int) -> float:
    """TTFT of a static batch (TensorRT-LLM benchmark): one step prefilling ``batch*input_tokens``."""
    return 1e3 * step_s(preset, batch * input_tokens, batch, batch * input_tokens)


def static_batch_tpot_ms(preset: Preset, batch: int, input_tokens: int, output_tokens: int) -> float:
    """Token-to-token latency of a static batch: decode step at the mean context ``I + O/2``."""
    return 1e3 * decode_step_s(preset, batch, int(batch * (input_tokens + output_tokens / 2)))


def activity(preset: Preset, running: int) -> float:
    """0 when idle, else ``floor + (1-floor) * n/(n + half_batch)`` (in 0..1)."""
    if running <= 0:
        return 0.0
    return preset.power_floor + (1.0 - preset.power_floor) * running / (running + preset.power_half_batch)


def power_w(preset: Preset, running: int) -> float:
    """Power of ONE GPU: ``idle_w + (tdp_w - idle_w) * activity(running)``."""
    return preset.idle_w + (preset.tdp_w - preset.idle_w) * activity(preset, running)
