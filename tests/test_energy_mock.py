"""Energy per token from a real sweep on the mock matches its power model (issue: telemetry)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backends.mock.perfmodel import get_preset, power_w

ROOT = Path(__file__).resolve().parents[1]


def test_energy_per_token_matches_the_power_model(tmp_path):
    preset = get_preset("tiny-cpu", decode_base_ms=10.0, decode_per_seq_us=500.0)
    r = subprocess.run(
        [sys.executable, "-m", "profiler.cli", "sweep", "--preset", "tiny-cpu", "--mock-arg=--decode-base-ms=10",
         "--mock-arg=--decode-per-seq-us=500", "--concurrency", "4,16", "--requests", "96", "--input-tokens", "16",
         "--output-tokens", "32", "--telemetry-period", "50ms", "--gpu-price", "2.0", "--out", str(tmp_path),
         "--json", "--no-report"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    points = pd.read_csv(run_dir / "points.csv")
    tel = pd.read_parquet(run_dir / "telemetry.parquet")
    assert {"power_w", "energy_j", "kv_cache_usage", "requests_running"} <= set(tel["metric"])
    facts = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
    for (_, p), f in zip(points.iterrows(), facts, strict=True):
        c = int(p["concurrency"])
        assert p["energy_source"] == "counter"
        # In a closed loop the engine runs `c` requests nearly all the time, so the GPU draws
        # power_w(c) (the model: idle + (TDP - idle) x activity(c)). Joules per output token over
        # the point = power x point duration / tokens. 15 % tolerance: the ramp at the start and
        # the drain at the end of each point run fewer than `c` requests.
        duration_s = (f["end_ns"] - f["start_ns"]) / 1e9
        expected_j = power_w(preset, c) * duration_s / p["output_tokens_total"]
        assert p["j_per_output_token"] == pytest.approx(expected_j, rel=0.15)
        assert p["power_mean_w"] == pytest.approx(power_w(preset, c), rel=0.15)
        assert p["output_tokens_per_kwh"] == pytest.approx(3.6e6 / p["j_per_output_token"], rel=1e-4)  # points.csv keeps 6 significant digits
        # the cost columns used the given price
        assert p["usd_per_gpu_hour"] == 2.0 and p["usd_per_1m_output"] > 0
    # more batching, less energy per token
    assert points["j_per_output_token"].iloc[1] < points["j_per_output_token"].iloc[0]
