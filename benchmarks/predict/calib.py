"""Public measurements as one table the spec model can predict row by row.

Reads ``../shared/reference/measured/`` (definitions in its README.md) and keeps the rows whose GPU
and model have specs here. Columns of ``load()``:

    source, engine, gpu, model, tp, wdtype, kvdtype, isl, osl, load, mode,
    ttft_ms, itl_ms, tok_s            (measured; NaN where the source gives none)

``mode``: ``static`` (batch = load), ``closed`` (concurrency = load), ``offline`` (engine picks the
batch), ``open`` (load = requests/s). ``tok_s`` = output tokens/s of the replica.
NVIDIA NIM benchmark sweeps are deliberately absent: they are the held-out check.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

MEASURED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "measured"
COLUMNS = ["source", "engine", "gpu", "model", "tp", "wdtype", "kvdtype", "isl", "osl", "load", "mode",
           "ttft_ms", "itl_ms", "tok_s"]

_GPU = [(r"^H100 80GB HBM3|^H100 \(|^H100 SXM", "h100-sxm"), (r"^H200", "h200"), (r"^H100 NVL", "h100-nvl"),
        (r"^A100", "a100-80gb"), (r"^L40S", "l40s"), (r"^L40$", "l40")]
_MODEL = [(r"llama[- ]?v?2[- ]7b", "llama-2-7b"), (r"llama[- ]?v?2[- ]13b", "llama-2-13b"),
          (r"llama[- ]?v?2[- ]70b", "llama-2-70b"), (r"llama-3(\.1)?-8b", "llama-3.1-8b"),
          (r"llama-3(\.[13])?-70b", "llama-3.1-70b"), (r"llama-3\.1-405b", "llama-3.1-405b"),
          (r"mistral[- ]7b", "mistral-7b"), (r"mixtral[- ]8x7b", "mixtral-8x7b"),
          (r"mixtral[- ]8x22b", "mixtral-8x22b"), (r"qwen2-7b", "qwen2.5-7b"), (r"qwen2-72b", "qwen2.5-72b")]


def _match(table, text: str) -> str | None:
    for pat, name in table:
        if re.search(pat, str(text), re.IGNORECASE):
            return name
    return None


def _trt09(d: Path) -> pd.DataFrame:
    raw = pd.read_csv(d / "trt_llm_0_9_0_benchmarks.csv")
    raw = raw[raw["Pipeline Model Parallel Size"] == 1]
    # Every row ran with "Use Fake Weight = Yes": harmless for dense models (same GEMMs), but random
    # router weights send an MoE's tokens to degenerate experts (Mixtral ITL is flat from batch 1 to
    # 64 here, where real routing reads ~all experts by batch 8), so MoE rows are left out.
    raw = raw[~raw["Model"].str.contains("Mixtral")]
    fp8 = raw["Precision"].eq("FP8")
    return pd.DataFrame({
        "source": "trt-llm-0.9", "engine": "TensorRT-LLM 0.9", "gpu": raw["GPU"].map(lambda g: _match(_GPU, g)),
        "model": raw["Model"].map(lambda m: _match(_MODEL, m)), "tp": raw["Tensor Model Parallel Size"],
        "wdtype": np.where(fp8, "fp8", "fp16"), "kvdtype": np.where(fp8, "fp8", "fp16"),
        "isl": raw["Input Token Length"], "osl": raw["Output Token Length"], "load": raw["Batch Size"],
        "mode": "static", "ttft_ms": raw["1st Token Latency (ms)"], "itl_ms": raw["Token-to-token Latency (ms)"],
        "tok_s": np.nan})


def _common(path: Path, source: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    prec = raw["precision"].astype(str).str.lower()
    w8 = prec.str.contains(r"weight = fp8|^fp8|fp8 weights") & ~prec.str.contains("weight = fp16")
    kv8 = prec.str.contains("fp8") & ~prec.str.contains("kv cache = fp16")
    mode = raw["mode"].map({"static batch": "static", "closed-loop concurrency": "closed", "offline": "offline",
                            "open-loop request rate (QPS)": "open"})
    qps = raw["notes"].astype(str).str.extract(r"QPS=(\w+)")[0].replace("INF", "inf").astype(float)
    load = np.where(mode == "open", qps, raw["concurrency_or_batch"])
    bad = prec.str.contains("int8|fp4|not stated")
    return pd.DataFrame({
        "source": source, "engine": raw["engine"], "gpu": raw["gpu"].map(lambda g: _match(_GPU, g)),
        "model": raw["model"].map(lambda m: _match(_MODEL, m)), "tp": raw["n_gpus"],
        "wdtype": np.where(w8, "fp8", "fp16"), "kvdtype": np.where(kv8, "fp8", "fp16"), "isl": raw["isl"],
        "osl": raw["osl"], "load": load, "mode": mode.where(~bad), "ttft_ms": raw["ttft_ms"],
        "itl_ms": raw["itl_ms"], "tok_s": raw["output_tok_per_s_total"]})


def _argonne(path: Path) -> pd.DataFrame:
    df = _common(path, "argonne")
    # The LLM-Inference-Bench A100 runs were done on ALCF's Polaris, whose nodes carry 4x
    # A100-SXM4-40GB (the CSV does not state the size; 70B at TP4 only fits in 4x40 GB with the
    # small KV cache these rows' steep fall-off with context shows).
    df.loc[df["gpu"] == "a100-80gb", "gpu"] = "a100-40gb"
    return df


def load(measured: Path = MEASURED) -> pd.DataFrame:
    """Every usable row (GPU and model known, lengths and load given, precision representable)."""
    parts = [_trt09(measured),
             _argonne(measured / "argonne_llm_inference_bench.csv"),
             _common(measured / "lmdeploy_a100_fp16.csv", "lmdeploy"),
             _common(measured / "trtllm_perf_overview.csv", "trtllm-perf-overview")]
    df = pd.concat(parts, ignore_index=True)[COLUMNS]
    df = df.dropna(subset=["gpu", "model", "mode", "isl", "osl"])
    df = df[(df["osl"] >= 1) & (df["isl"] >= 1)]
    df = df[df["load"].notna() | (df["mode"] == "offline")]
    df = df[df[["ttft_ms", "itl_ms", "tok_s"]].notna().any(axis=1)]
    # Argonne's batch-16 TTFT rows generate one token: a static-batch prefill, nothing else
    for c in ("tp", "isl", "osl"):
        df[c] = df[c].astype(int)
    return df.reset_index(drop=True)
