"""`sweep --find` and `sweep --converge` against the mock server (its own process, real sockets)."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import facts_lines, inferprof, point_files, start, wait_for

from profiler.capacity import history_from, read_search
from profiler.mockproc import MockProcess
from profiler.search import SearchConfig, Stop, next_probe

# TPOT ≈ 10 ms + 0.5 ms × batch: a p50 limit of 14 ms puts the knee near 8 streams.
MOCK = ["--preset", "tiny-cpu", "--decode-base-ms", "10", "--decode-per-seq-us", "500"]
SHORT = ["--input-tokens", "16", "--output-tokens", "8", "--no-report", "--no-telemetry", "--json"]


@pytest.fixture(scope="module")
def mock():
    with MockProcess(MOCK) as m:
        yield m


SEARCH = ["--find", "max-goodput", "--slo", "tpot_p50=14ms", "--range", "1,16", "--requests", "200",
          "--min-duration", "1s", "--max-duration", "4s", *SHORT]


@pytest.fixture(scope="module")
def search(mock, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = inferprof("sweep", "--url", mock.url, *SEARCH, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    return doc, Path(doc["run_dir"])


def test_search_trail_and_answer(search):
    doc, run_dir = search
    s = read_search(run_dir)
    probes = s["probes"]
    points = pd.read_csv(run_dir / "points.csv")
    assert len(points) == len(probes)  # every probe is a point of the run folder
    assert [p["role"] for p in probes[:2]] == ["calibration", "calibration"]
    assert s["start"]["start"] >= 1 and s["stopped"]
    found = s["found_load"]
    assert found is not None and 1 <= found < 16
    assert probes[s["found_point"]]["verdict"] == "pass" and probes[s["found_point"]]["load"] == found
    lo, hi = s["bracket"]
    assert lo == found and hi is not None and hi - lo <= 1  # concurrency: within one step
    assert s["gpu_seconds"] == pytest.approx(sum(p["seconds"] for p in probes) * s["gpus"])
    # --json leads with the answer
    assert doc["search"]["found_load"] == found and doc["search"]["found_point"] == s["found_point"]
    assert doc["search"]["verdict"] == "pass" and len(doc["search"]["probes"]) == len(probes)


def test_replaying_the_trail_gives_the_same_decisions(search):
    # what --resume relies on: the finished probes through next_probe reproduce the search's choices
    _, run_dir = search
    s = read_search(run_dir)
    assert any(p["role"] == "probe" and p["in_history"] for p in s["probes"])
    _replays(s)


def _replays(s: dict) -> None:
    """Every counted probe is the load the rule names after the probes counted before it."""
    config = SearchConfig(**s["config"])
    history = history_from(s)
    counted = [p for p in s["probes"] if p["in_history"]]
    for k, p in enumerate(counted):
        if p["role"] == "probe":
            assert next_probe(history[:k], config) == p["load"], (k, p)
    assert isinstance(next_probe(history, config), Stop)


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_stopped_search_resumes_where_it_stopped(how, mock, tmp_path):
    sweep = start("sweep", "--url", mock.url, *SEARCH, "--out", str(tmp_path))
    wait_for(lambda: facts_lines(tmp_path) >= 3)  # both calibration points and a probe
    run_dir = next(tmp_path.iterdir())
    k = facts_lines(tmp_path)
    wait_for(lambda: any((run_dir / "requests.parquet").glob(f"point-{k:05d}-*")))  # point k is under way
    before = {i: point_files(run_dir, i) for i in range(k)}
    rows = {p["point"]: p for p in read_search(run_dir)["probes"]}
    sweep.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    sweep.communicate(timeout=120)
    assert sweep.returncode == (143 if how == "sigterm" else -9)
    kept = facts_lines(tmp_path)
    assert kept == (k + 1 if how == "sigterm" else k)  # SIGTERM ends point k cleanly and keeps it

    r = inferprof("sweep", "--resume", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {i: point_files(run_dir, i) for i in range(k)} == before  # byte for byte
    s = read_search(run_dir)
    assert s["stopped"] and s["found_load"] is not None
    probes = s["probes"]
    assert [p["point"] for p in probes] == list(range(len(probes)))
    assert list(pd.read_csv(run_dir / "points.csv")["point"]) == list(range(len(probes)))
    assert all(probes[i] == row for i, row in rows.items())  # the finished probes' rows, as recorded
    if how == "sigterm":  # the cut probe stays in the folder, out of the history, and is measured again
        assert probes[k]["stop_reason"] == "interrupted" and not probes[k]["in_history"]
        assert probes[k + 1]["load"] == probes[k]["load"] and probes[k + 1]["in_history"]
    _replays(s)
    assert json.loads((run_dir / "manifest.json").read_text())["resumes"][0]["from_point"] == kept
    assert json.loads(r.stdout)["search"]["found_load"] == s["found_load"]
    again = inferprof("sweep", "--resume", str(run_dir))
    assert again.returncode == 2 and "already ended" in again.stderr


def test_converge_ends_a_failing_grid_point_early(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--concurrency", "8", "--requests", "5000", "--converge", "5%",
                  "--slo", "tpot_p50=5ms", "--min-duration", "1s", "--max-duration", "60s", "--out", str(tmp_path),
                  *SHORT)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    s = read_search(doc["run_dir"])
    assert s["probes"][0]["verdict"] == "fail" and s["probes"][0]["ended"] == "decided: fail"
    assert doc["points"][0]["requests"] < 5000
    assert doc["search"]["found_load"] is None


@pytest.mark.parametrize("args, needle", [
    (["--find", "max-goodput"], "needs --slo"),
    (["--find", "max-goodput", "--slo", "ttft_p99=1s", "--concurrency", "4"], "drop --concurrency"),
    (["--find", "max-goodput", "--slo", "ttft_p99=1s", "--range", "8,2"], "0 < LO < HI"),
    (["--find", "max-goodput", "--slo", "ttft_p99=1s", "--range", "1.5,4"], "whole numbers"),
    (["--find", "max-goodput", "--slo", "ttft_p99=1s", "--tolerance", "x"], "--tolerance"),
    (["--find", "max-throughput"], "needs --slo"),
])
def test_bad_search_flags_are_one_line(args, needle):
    r = inferprof("sweep", *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_repeat_rounds_and_interval_columns(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--concurrency", "2,4", "--requests", "8", "--repeat", "2",
                  "--out", str(tmp_path), *SHORT)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    points = pd.read_csv(run_dir / "points.csv")
    assert points["load"].tolist() == [2, 4, 2, 4]  # rounds of the grid
    assert points["repeat"].tolist() == [0, 0, 1, 1]
    for _load, rows in points.groupby("load"):
        assert rows["output_tok_per_s_rep_mean"].iloc[0] == pytest.approx(rows["output_tok_per_s"].mean(), rel=1e-3)  # csv keeps 3 decimals
        assert rows["output_tok_per_s_rep_ci95"].notna().all()
    # points.csv stays a function of the folder
    assert inferprof("report", str(run_dir)).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "points.csv"), points)


def test_compare_uses_the_repeats(mock, tmp_path):
    runs = []
    for seed in ("1", "2"):
        r = inferprof("sweep", "--url", mock.url, "--concurrency", "2", "--requests", "8", "--repeat", "3",
                      "--seed", seed, "--out", str(tmp_path), *SHORT)
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(json.loads(r.stdout)["run_dir"])
    r = inferprof("compare", *runs, "--format", "csv", "--metrics", "ttft_p50,output_tok_per_s")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pd.read_csv(io.StringIO(r.stdout))
    assert len(rows) == 2 and rows["note"].str.contains("across repeats (3 vs 3", regex=False).all()
    points = pd.read_csv(Path(runs[0]) / "points.csv")
    tok = rows[rows["metric"] == "output_tok_per_s"].iloc[0]
    assert tok["a"] == pytest.approx(points["output_tok_per_s"].mean(), rel=1e-3)  # the repeats' mean
