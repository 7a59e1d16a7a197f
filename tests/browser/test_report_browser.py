"""Open report.html and compare.html in headless Chromium: screenshot, DOM, no console errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_report_fixture import PRICING, build_run  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
TIMEOUT_S = 90

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        res = subprocess.run(["bash", str(ROOT / "scripts" / "install_chromium.sh")], capture_output=True,
                             text=True, timeout=900)
        assert res.returncode == 0, f"install_chromium.sh failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    assert CHROMIUM.exists(), "chromium still missing after scripts/install_chromium.sh"
    return CHROMIUM


def _chromium(binary: Path, tmp: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([str(binary), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line
            or ":CONSOLE(" in line]


def _open(binary: Path, tmp: Path, page: Path, shot: Path) -> str:
    res = _chromium(binary, tmp, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists() and shot.stat().st_size > 10_000, res.stderr[-2000:]
    assert not _console_errors(res.stderr), _console_errors(res.stderr)
    res = _chromium(binary, tmp, page, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not _console_errors(res.stderr), _console_errors(res.stderr)
    return res.stdout


def test_report_in_chromium(chromium, tmp_path):
    from profiler.report import write_report

    run = build_run(tmp_path, pricing=PRICING, model="<script>alert(1)</script>")
    page = write_report(run)
    dom = _open(chromium, tmp_path, page, run / "report.png")
    points = pd.read_csv(run / "points.csv")
    best = points.loc[points["output_tok_per_s"].idxmax()]
    slo_load = points[points["slo_met"].astype(str) == "True"]["load"].max()
    assert f'<span id="max-tput">{best["output_tok_per_s"]:,.0f}</span>' in dom
    assert f'<span id="slo-load">concurrency {slo_load:g}</span>' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown as text, never run
    assert dom.count("<img") == 6


def test_compare_in_chromium(chromium, tmp_path):
    from profiler.report.compare import CompareOptions, compare_runs, load_runs, write_compare

    a = build_run(tmp_path, name="a", pricing=PRICING)
    b = build_run(tmp_path, name="b", seed=4, itl_ms=lambda load: 12.0 + 0.5 * load, pricing=PRICING)
    opts = CompareOptions(resamples=500)
    runs = load_runs([a, b])
    page = write_compare(runs, compare_runs(runs, opts), tmp_path / "cmp", opts)
    dom = _open(chromium, tmp_path, page, tmp_path / "cmp" / "compare.png")
    assert "B slower" in dom and dom.count("<img") == 3
