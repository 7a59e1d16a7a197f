"""The fault matrix: the mock injects every fault kind (backends/mock/faults.py) into one sweep and
the sweep must finish, give each failed request the expected class, count them in points.csv, and
leave the healthy requests' numbers alone.

Rules `KIND%N` fault every N-th generation request the mock sees (its index counts from 0, the
client's preflight request being 0), so the expected faults are known exactly: at concurrency 1
request r of the first point is generation request r + 1, and each point's class counts are
computed by replaying the same plan (`FaultPlan.draw`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import inferprof

from backends.mock.faults import CLIENT_CLASS as EXPECTED_CLASS
from backends.mock.faults import FaultPlan, parse_rule
from profiler.mockproc import MockProcess

N = 90  # requests per point
RULES = ["http429%11", "http500%13", "http503%17", "reset_head%19", "reset_mid%23", "bad_json%29", "truncated%31",
         "wrong_type%37", "stall%41", "slow_headers%43", "error_event%47"]
# Exact-schedule mock: TTFT 30 ms x lognormal(0.3), ITL 4 ms; slow_headers start 2 s late.
MOCK = ["--ttft-ms", "30", "--itl-ms", "4", "--jitter", "lognormal:0.3", "--seed", "5", "--fault-delay", "2"]
SWEEP = ["--concurrency", "1,4", "--requests", str(N), "--input-tokens", "16", "--output-tokens", "6",
         "--ttft-timeout", "1s", "--idle-timeout", "1s", "--warmup", "0", "--no-report", "--no-telemetry", "--json"]


def ks_pvalue(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov test: the asymptotic p-value of the largest gap between the
    empirical CDFs (Stephens' small-sample correction; Numerical Recipes 14.3)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    d = np.max(np.abs(np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size))
    ne = a.size * b.size / (a.size + b.size)
    lam = (np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d
    k = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1) ** (k - 1) * np.exp(-2 * k**2 * lam**2)), 0, 1))


def expected_faults(n_points: int) -> list[list[str]]:
    """The fault kind of each request of each point ("" = none), replaying the mock's plan."""
    plan = FaultPlan([parse_rule(r) for r in RULES])
    plan.draw()  # the preflight
    return [[plan.draw() for _ in range(N)] for _ in range(n_points)]


def run(url: str, out: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    r = inferprof("sweep", "--url", url, *SWEEP, "--out", str(out))
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    return run_dir, pd.read_csv(run_dir / "points.csv", keep_default_na=False), pd.read_parquet(
        run_dir / "requests.parquet")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    args = [*MOCK, *[x for rule in RULES for x in ("--fault", rule)]]
    with MockProcess(args) as m:
        return run(m.url, tmp_path_factory.mktemp("faulty"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    with MockProcess(MOCK) as m:
        return run(m.url, tmp_path_factory.mktemp("clean"))


def test_each_fault_gets_its_class_request_by_request(faulty):
    _, _, req = faulty
    first = req[req["point"] == 0].sort_values("request")
    want = [EXPECTED_CLASS.get(kind, "") for kind in expected_faults(1)[0]]
    assert list(first["error"]) == want
    assert set(first["error"]) == set(EXPECTED_CLASS.values()) | {""}  # every class of the matrix occurs


def test_points_csv_counts_every_class(faulty):
    _, points, req = faulty
    for p, kinds in enumerate(expected_faults(2)):
        want = Counter(EXPECTED_CLASS[k] for k in kinds if k)
        row = points.iloc[p]
        got = {c: int(row[f"err_{c}"]) for c in set(EXPECTED_CLASS.values()) | {"connect", "timeout_total"}}
        assert got == {c: want.get(c, 0) for c in got}, p
        assert int(row["errors"]) == sum(want.values()) and int(row["ok"]) == N - sum(want.values())
        assert row["stop_reason"] == ""  # no policy asked for: the point ran to its end
        mine = req[req["point"] == p]
        assert Counter(mine.loc[mine["error"] != "", "error"]) == want


def test_failure_details_are_kept(faulty):
    _, _, req = faulty
    detail = dict(zip(req["error"], req["error_detail"], strict=True))
    assert "Retry-After: 1" in detail["http_429"]
    assert "HTTP 5" in detail["http_5xx"]
    assert "mock injected error event" in detail["server_error"]
    assert detail["timeout_idle"] == "no data for 1 s" and detail["timeout_ttft"] == "no response body in 1 s"


def test_healthy_requests_ttft_matches_a_fault_free_run(faulty, clean):
    """Two-sample Kolmogorov-Smirnov on the successful requests' TTFT, per point: the faults may
    not shift the healthy requests' distribution (alpha = 0.001; no timing threshold)."""
    for p in (0, 1):
        a, b = (r[(r["point"] == p) & (r["error"] == "")] for r in (faulty[2], clean[2]))
        ttft_a = (a["first_content_ns"] - a["send_ns"]) / 1e6
        ttft_b = (b["first_content_ns"] - b["send_ns"]) / 1e6
        assert len(ttft_a) > 40 and len(ttft_b) == N
        assert ks_pvalue(ttft_a, ttft_b) > 0.001, (p, ttft_a.describe(), ttft_b.describe())


def test_ks_pvalue_tells_shifted_from_same():
    rng = np.random.default_rng(0)
    x = rng.lognormal(3.4, 0.3, 60)
    assert ks_pvalue(x, rng.lognormal(3.4, 0.3, 80)) > 0.01
    assert ks_pvalue(x, rng.lognormal(3.4, 0.3, 80) + 10) < 0.001


def test_failures_stay_out_of_latency_and_count_against_slo_attainment(faulty):
    run_dir, points, req = faulty
    ok = req[(req["point"] == 0) & (req["error"] == "")]
    ttft_ms = (ok["first_content_ns"] - ok["send_ns"]) / 1e6
    assert float(points.iloc[0]["ttft_p50_ms"]) == pytest.approx(ttft_ms.median(), rel=1e-4)
    r = inferprof("report", str(run_dir), "--format", "csv")  # same folder, an SLO every success meets
    assert r.returncode == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["slos"] = {"e2e_p99": 60.0}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert inferprof("report", str(run_dir), "--format", "csv").returncode == 0
    row = pd.read_csv(run_dir / "points.csv").iloc[0]
    assert row["slo_attainment"] == pytest.approx(row["ok"] / row["requests"])
