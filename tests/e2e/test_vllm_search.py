"""`sweep --find` against the real vLLM CPU server: the search finds a knee in a small range."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from vllm_helpers import run_sweep

pytestmark = pytest.mark.vllm

LENGTHS = ["--input-tokens", "16", "--output-tokens", "16"]


HI = 16
# Each point is watched and capped as a search probe is, so both runs see the same client load.
WATCHED = ["--requests", "60", "--min-duration", "1s", "--max-duration", "6s", *LENGTHS, "--no-report",
           "--no-telemetry"]


def test_search_finds_a_knee_between_concurrency_1_and_16(vllm_url, tmp_path):
    # An e2e_p50 limit between the latencies measured at 1 and 16 streams puts the knee inside 1..16.
    # The CPU server sometimes sends a whole answer at once (its busy-polling worker takes a core),
    # which makes a lone request's E2E bimodal: the limit sits above its p90, not its median.
    calib = run_sweep(vllm_url, tmp_path / "calib", "--concurrency", f"1,{HI}", "--converge", "10%", *WATCHED)
    points = pd.read_csv(calib / "points.csv")
    lo_ms, hi_ms = points["e2e_p90_ms"].iloc[0], points["e2e_p50_ms"].iloc[1]
    assert hi_ms > 1.5 * lo_ms, f"E2E barely grows from 1 to {HI} streams (p90 {lo_ms:.0f} → p50 {hi_ms:.0f} ms)"
    limit_ms = math.sqrt(lo_ms * hi_ms)
    run_dir = run_sweep(vllm_url, tmp_path / "search", "--find", "max-goodput", "--range", f"1,{HI}",
                        "--slo", f"e2e_p50={limit_ms:.0f}ms", *WATCHED)
    search = json.loads((run_dir / "search.json").read_text())
    probes = search["probes"]
    points = pd.read_csv(run_dir / "points.csv")
    assert len(points) == len(probes), "every probe is a point of the run folder"
    found = search["found_load"]
    assert found is not None and 1 <= found < HI, search
    at_found = [p for p in probes if p["in_history"] and p["load"] == found]
    # rule 5 (profiler/search.py): a load passes when any of its probes passed
    assert any(p["verdict"] == "pass" for p in at_found), probes
    above = [p for p in probes if p["in_history"] and p["load"] > found]
    assert above and min(p["load"] for p in above) - found <= 1, probes  # concurrency: within one step
    assert all(p["verdict"] != "pass" for p in above if p["load"] == min(q["load"] for q in above))
    seconds = sum(p["seconds"] for p in probes)
    assert search["gpu_seconds"] == pytest.approx(seconds * search["gpus"])
    assert "tolerance" in search["stopped"] or "probed" in search["stopped"], search["stopped"]
