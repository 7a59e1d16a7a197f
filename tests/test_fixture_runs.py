"""Recorded run folders (tests/fixtures/runs, swept on the embedded mock) are recomputed exactly:
`inferprof report` on a copy without points.csv writes the committed points.csv byte for byte.

closed_slo_telemetry: concurrency 1,4, SLOs ttft_p99/tpot_p99/itl_p99, simulated DCGM telemetry, prices.
open_errors: rate 4,8 with --fail-rate 0.25 (failed requests), SLOs ttft_p99/e2e_p90.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
RUNS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", RUNS)
def test_report_rewrites_fixture_points_csv_byte_for_byte(name, tmp_path):
    src = FIXTURES / name
    run = tmp_path / name
    shutil.copytree(src, run)
    (run / "points.csv").unlink()
    r = subprocess.run([sys.executable, "-m", "profiler", "report", str(run), "--format", "csv"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (run / "points.csv").read_bytes() == (src / "points.csv").read_bytes()


def test_fixture_runs_are_both_kinds():
    assert set(RUNS) >= {"closed_slo_telemetry", "open_errors"}
