"""Telemetry truth: inferprof's NVML sampling against a GPU load whose shape is known.

`measure` samples NVML with `profiler.telemetry.TelemetrySession` while `load_pattern.py` runs
idle / full / 50 % duty / idle in a child process; `analyse` (pure) turns the samples and the
phase times into the figures and checks below. Every number comes from the product's own code
(`profiler.telemetry.summarize_point`), so this checks what a sweep reports.

Per phase (window = [phase start + SETTLE_S, phase end]: power and the utilisation counter need
a moment to follow a step): time-weighted mean power (W) and NVML gpu_util (0-1), means of
memory used, SM / memory clocks and temperature, the OR of the clock-event reason bits.

Energy: over [first phase start, last phase end], the energy counter's delta
(nvmlDeviceGetTotalEnergyConsumption, edges interpolated) against the trapezoid integral of the
sampled power; relative difference = (counter - integral) / integral.

Checks (pass/fail; thresholds say what "follows the pattern" means):
  util_full >= 0.9, util_idle <= 0.1 (both idle phases), 0.3 <= util_duty <= 0.7,
  power: full > duty > idle (means), |energy relative difference| <= 5 %,
  memory, SM clock, memory clock, temperature and clock-event reasons each read at least once,
  the GPU name maps to a catalog price and a spec-table row.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from profiler.telemetry import TelemetrySession, build_sources, samples_frame, summarize_point

HERE = Path(__file__).resolve().parent
SETTLE_S = 1.0
READOUTS = ("mem_used_mib", "sm_clock_mhz", "mem_clock_mhz", "temp_c", "throttle_reasons")
ENERGY_TOLERANCE = 0.05


def measure(python: str, period_s: float, pattern: list[str], timeout_s: float) -> dict:
    """Sample NVML around the load pattern; {"nvml": False, "notice"} when there is no NVML."""
    sources, notices = build_sources(url=None, metrics_url=None, dcgm_url=None, nvml=True, gpus=[0])
    if not any(s.name == "nvml" for s in sources):
        return {"nvml": False, "notice": "; ".join(notices) or "NVML absent"}
    session = TelemetrySession(sources, period_s=period_s, notices=notices)
    gpu_info = session.gpu_info()
    with session:
        session.sample_now()
        proc = subprocess.run([python, str(HERE / "load_pattern.py"), *pattern], capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        time.sleep(2 * period_s)
        session.sample_now()
    if proc.returncode != 0:
        return {"nvml": True, "error": f"load pattern exited {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    phases = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {"nvml": True, "samples": samples_frame(session.drain()), "phases": phases,
            "gpu_info": gpu_info, "notices": session.notices, "errors": dict(session.errors)}


def _phase_row(df: pd.DataFrame, ph: dict, gpu_info: list[dict]) -> dict:
    start = int(ph["start_ns"] + SETTLE_S * 1e9)
    end = int(ph["end_ns"])
    s = summarize_point(df, start, end, output_tokens=0, gpu_info=gpu_info)
    inside = df[(df["t_ns"] >= start) & (df["t_ns"] <= end)]
    row = {"phase": ph["phase"], "seconds": (ph["end_ns"] - ph["start_ns"]) / 1e9,
           "busy_frac": ph.get("busy_s", 0.0) / max((ph["end_ns"] - ph["start_ns"]) / 1e9, 1e-9),
           "power_mean_w": s["power_mean_w"], "gpu_util_mean": s["gpu_util_mean"],
           "power_samples": s["power_samples"]}
    for metric in READOUTS[:-1]:
        vals = inside.loc[inside["metric"] == metric, "value"]
        row[f"{metric}_mean"] = float(vals.mean()) if len(vals) else math.nan
    bits = inside.loc[inside["metric"] == "throttle_reasons", "value"]
    row["clock_event_reasons"] = hex(_or_all(bits)) if len(bits) else ""
    if ph.get("matmuls"):
        row["tflops"] = 2 * ph.get("size", 0) ** 3 * ph["matmuls"] / max(ph.get("busy_s", 0.0), 1e-9) / 1e12
    return row


def _or_all(values: pd.Series) -> int:
    out = 0
    for v in values:
        out |= int(v)
    return out


def energy_check(df: pd.DataFrame, start: int, end: int) -> dict:
    """Counter delta vs integral of sampled power over [start, end], both by summarize_point."""
    counter = summarize_point(df, start, end, output_tokens=0)
    integral = summarize_point(df[df["metric"] != "energy_j"], start, end, output_tokens=0)
    out = {"seconds": (end - start) / 1e9, "counter_j": math.nan, "integral_j": integral["energy_j"],
           "relative_difference": math.nan}
    if counter["energy_source"] == "counter":
        out["counter_j"] = counter["energy_j"]
        if integral["energy_j"] > 0:
            out["relative_difference"] = (counter["energy_j"] - integral["energy_j"]) / integral["energy_j"]
    return out


def identity(gpu_info: list[dict]) -> dict:
    """GPU name -> canonical id, catalog $/GPU-hour, spec row (None where unknown)."""
    from profiler.cost import canonical_gpu, gpu_spec, resolve_pricing

    name = next((g.get("name") for g in gpu_info if g.get("name")), None)
    out: dict = {"name": name, "driver": next((g.get("driver") for g in gpu_info if g.get("driver")), ""),
                 "canonical": canonical_gpu(name), "usd_per_gpu_hour": None, "price_source": "", "spec": None}
    if out["canonical"] is None:
        return out
    p = resolve_pricing(detected_gpu=name)
    out["usd_per_gpu_hour"], out["price_source"] = p.usd_per_gpu_hour, p.source
    try:
        sp = gpu_spec(name)
        out["spec"] = {"name": sp.name, "bandwidth_tbps": sp.bandwidth_tbps, "bf16_dense_tflops": sp.bf16_dense_tflops,
                       "memory_gb": sp.memory_gb, "tdp_w": sp.tdp_w}
    except ValueError:
        pass
    return out


def analyse(df: pd.DataFrame, phases: list[dict], gpu_info: list[dict]) -> dict:
    """Per-phase table, energy agreement, read-outs, identity and the checks (module docstring)."""
    rows = [_phase_row(df, ph, gpu_info) for ph in phases]
    by = {r["phase"]: r for r in rows}
    energy = energy_check(df, int(phases[0]["start_ns"]), int(phases[-1]["end_ns"]))
    seen = {m: int((df["metric"] == m).sum()) for m in ("power_w", "energy_j", "gpu_util", *READOUTS)}
    ident = identity(gpu_info)
    checks = _checks(by, energy, seen, ident)
    return {"phases": rows, "energy": energy, "samples_per_metric": seen, "gpu": ident, "checks": checks,
            "ok": all(c["ok"] for c in checks)}


def _check(name: str, ok: bool, detail: str) -> dict:
    return {"name": name, "ok": bool(ok), "detail": detail}


def _checks(by: dict, energy: dict, seen: dict, ident: dict) -> list[dict]:
    u = {k: by.get(k, {}).get("gpu_util_mean", math.nan) for k in ("idle_before", "full", "duty50", "idle_after")}
    p = {k: by.get(k, {}).get("power_mean_w", math.nan) for k in u}
    rel = energy["relative_difference"]
    return [
        _check("util_full>=0.9", u["full"] >= 0.9, f"{u['full']:.3f}"),
        _check("util_idle<=0.1", max(u["idle_before"], u["idle_after"]) <= 0.1,
               f"{u['idle_before']:.3f} / {u['idle_after']:.3f}"),
        _check("util_duty_in_0.3..0.7", 0.3 <= u["duty50"] <= 0.7, f"{u['duty50']:.3f}"),
        _check("power_full>duty>idle", p["full"] > p["duty50"] > max(p["idle_before"], p["idle_after"]),
               f"{p['full']:.0f} > {p['duty50']:.0f} > {max(p['idle_before'], p['idle_after']):.0f} W"),
        _check("energy_counter_vs_integral<=5%", abs(rel) <= ENERGY_TOLERANCE,
               f"{energy['counter_j']:.1f} J vs {energy['integral_j']:.1f} J ({rel:+.2%})"),
        *[_check(f"read_{m}", seen.get(m, 0) > 0, f"{seen.get(m, 0)} samples") for m in READOUTS],
        _check("gpu_in_price_catalog", ident["usd_per_gpu_hour"] is not None,
               f"{ident['name']} -> {ident['canonical']} ${ident['usd_per_gpu_hour']}/GPU-h"),
        _check("gpu_in_spec_table", ident["spec"] is not None, str((ident["spec"] or {}).get("name"))),
    ]


def run(out_dir: Path, python: str = sys.executable, period_s: float = 0.05,
        pattern: list[str] | None = None, timeout_s: float = 120.0) -> dict:
    """Measure, write telemetry_samples.csv and telemetry_phases.csv, return the analysis."""
    m = measure(python, period_s, pattern or [], timeout_s)
    if not m["nvml"] or "error" in m:
        return {k: v for k, v in m.items() if k != "samples"} | {"ok": False}
    df, phases = m["samples"], m["phases"]
    df.to_csv(out_dir / "telemetry_samples.csv", index=False)
    res = analyse(df, phases, m["gpu_info"])
    pd.DataFrame(res["phases"]).to_csv(out_dir / "telemetry_phases.csv", index=False)
    return {"nvml": True, **res, "notices": m["notices"], "sampler_errors": m["errors"]}
