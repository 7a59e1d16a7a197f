"""`sweep --find` against the real vLLM CPU server: the search finds a knee in a small range."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from vllm_helpers import run_sweep

pytestmark = pytest.mark.vllm

LENGTHS = ["--input-tokens", "16", "--output-tokens", "16"]


def _e2e_p50_ms(run_dir) -> list[float]:
    return pd.read_csv(run_dir / "points.csv")["e2e_p50_ms"].tolist()


def test_search_finds_a_knee_between_concurrency_1_and_8(vllm_url, tmp_path):
    # An e2e_p50 limit between the medians measured at 1 and 8 streams puts the knee inside 1..8.
    calib = run_sweep(vllm_url, tmp_path / "calib", "--concurrency", "1,8", "--requests", "16", *LENGTHS,
                      "--no-report", "--no-telemetry")
    lo_ms, hi_ms = _e2e_p50_ms(calib)
    assert hi_ms > 1.2 * lo_ms, f"E2E p50 barely grows from 1 to 8 streams ({lo_ms:.0f} → {hi_ms:.0f} ms)"
    limit_ms = math.sqrt(lo_ms * hi_ms)
    run_dir = run_sweep(vllm_url, tmp_path / "search", "--find", "max-goodput", "--range", "1,8",
                        "--slo", f"e2e_p50={limit_ms:.0f}ms", "--requests", "60", "--min-duration", "1s",
                        "--max-duration", "6s", *LENGTHS, "--no-report", "--no-telemetry")
    search = json.loads((run_dir / "search.json").read_text())
    probes = search["probes"]
    points = pd.read_csv(run_dir / "points.csv")
    assert len(points) == len(probes), "every probe is a point of the run folder"
    found = search["found_load"]
    assert found is not None and 1 <= found < 8, search
    passed = [p for p in probes if p["in_history"] and p["load"] == found]
    assert passed and all(p["verdict"] == "pass" for p in passed), probes
    above = [p for p in probes if p["in_history"] and p["load"] > found]
    assert above and min(p["load"] for p in above) - found <= 1, probes  # concurrency: within one step
    assert all(p["verdict"] != "pass" for p in above if p["load"] == min(q["load"] for q in above))
    seconds = sum(p["seconds"] for p in probes)
    assert search["gpu_seconds"] == pytest.approx(seconds * search["gpus"])
    assert "tolerance" in search["stopped"] or "probed" in search["stopped"], search["stopped"]
