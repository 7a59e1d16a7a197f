"""The error policy, signals, resume and secrets, end to end: the CLI against the mock (real sockets,
real processes). A crashed server is restarted by the mock's own supervisor (backends/mock/faults.py
`crash%N+D`); the sweep process is stopped with SIGTERM and with `kill -9` and resumed."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import facts_lines, inferprof, point_files, start, wait_for

from profiler.mockproc import MockProcess

ROOT = Path(__file__).resolve().parents[1]
FAST_MOCK = ["--ttft-ms", "5", "--itl-ms", "2"]
QUIET = ["--no-report", "--no-telemetry", "--input-tokens", "8", "--output-tokens", "4", "--json"]


def test_server_crash_and_restart_the_sweep_waits_and_finishes(tmp_path):
    # generation request 50 kills the mock (point 2 of 20-request points); its supervisor starts
    # it again on the same port 2 s later
    with MockProcess([*FAST_MOCK, "--fault", "crash%50+2"]) as m:
        r = inferprof("sweep", "--url", m.url, "--concurrency", "2,2,2,2,2", "--requests", "20", *QUIET,
                      "--server-down-wait", "60s", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    points = pd.read_csv(run_dir / "points.csv", keep_default_na=False)
    assert len(points) == 5
    hit = points.iloc[2]
    assert hit["err_reset"] + hit["err_connect"] >= 1 and hit["stop_reason"] in ("server_down", "")
    assert (points.loc[[0, 1, 3, 4], "errors"] == 0).all() and (points.loc[[3, 4], "ok"] == 20).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    [event] = manifest["events"]
    assert event["point"] == 2 and event["back"] and "ended" not in manifest


def test_server_that_never_comes_back_ends_the_sweep_with_the_reason(tmp_path):
    with MockProcess([*FAST_MOCK, "--fault", "crash%30+600"]) as m:
        r = inferprof("sweep", "--url", m.url, "--concurrency", "1,1,1", "--requests", "20", *QUIET,
                      "--server-down-wait", "2s", "--out", str(tmp_path))
    assert r.returncode == 2 and "stopped answering at point 1" in r.stderr and "Traceback" not in r.stderr
    run_dir = next(tmp_path.iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "did not come back within 2 s" in manifest["ended"]["reason"]
    points = pd.read_csv(run_dir / "points.csv", keep_default_na=False)
    assert len(points) == 2 and points.loc[0, "errors"] == 0 and points.loc[1, "stop_reason"] == "server_down"


def test_max_error_rate_stops_the_point_early_and_marks_it(tmp_path):
    with MockProcess([*FAST_MOCK, "--fault", "http503=0.7", "--seed", "1"]) as m:
        r = inferprof("sweep", "--url", m.url, "--concurrency", "2", "--requests", "400", *QUIET,
                      "--max-error-rate", "0.3", "--error-window", "20", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)["points"]
    assert row["stop_reason"] == "error_rate" and row["requests"] < 100
    assert row["err_http_5xx"] == row["errors"] > 0.3 * 10


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_stopped_sweep_resumes_with_finished_points_unchanged(how, tmp_path):
    # ~5 s a point (4 streams, 0.8 s a request): stopped in the middle, with requests in flight
    n = 24
    with MockProcess([*FAST_MOCK, "--itl-ms", "20"]) as m:
        sweep = start("sweep", "--url", m.url, "--concurrency", "4,4,4", "--requests", str(n), *QUIET,
                      "--output-tokens", "40", "--out", str(tmp_path))
        wait_for(lambda: facts_lines(tmp_path) >= 1)
        run_dir = next(tmp_path.iterdir())
        wait_for(lambda: any((run_dir / "requests.parquet").glob("point-00001-*")))  # point 1 is under way
        before = point_files(run_dir, 0)
        sweep.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        sweep.communicate(timeout=120)
        facts = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
        if how == "sigterm":  # the point under way was ended cleanly and recorded
            assert sweep.returncode == 143 and len(facts) == 2 and facts[1]["stop_reason"] == "interrupted"
            row = pd.read_csv(run_dir / "points.csv").iloc[1]
            assert row["cancelled"] >= 1 and row["requests"] < n
            assert "interrupted by signal 15" in json.loads((run_dir / "manifest.json").read_text())["ended"]["reason"]
        else:
            assert sweep.returncode == -9 and len(facts) == 1
        r = inferprof("sweep", "--resume", str(run_dir), "--no-report", "--json")
    assert r.returncode == 0, r.stderr
    assert point_files(run_dir, 0) == before  # byte for byte
    points = pd.read_csv(run_dir / "points.csv")
    assert list(points["point"]) == [0, 1, 2]
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert req.groupby("point")["request"].apply(lambda s: s.is_unique).all()  # nothing counted twice
    assert (points.loc[points.index[-1], "requests"] == n) and not (run_dir / ".spool").exists()
    if how == "kill9":
        assert (points["requests"] == n).all() and (points["ok"] == n).all()
    assert json.loads((run_dir / "manifest.json").read_text())["resumes"][0]["from_point"] == len(facts)


def test_api_key_never_reaches_a_file_or_the_output(tmp_path):
    key = "sk-inferprof-secret-7f3a9c"
    env = {**os.environ, "MY_API_KEY": key, "INFERPROF_CACHE": str(tmp_path / "cache")}
    from backends.http1 import Endpoint
    from backends.openai import OpenAICodec
    from workloads.requests import RequestSpec

    sent = OpenAICodec(Endpoint("127.0.0.1", 1, ""), "m", api_key_env="MY_API_KEY")
    os.environ["MY_API_KEY"] = key
    try:
        assert f"Bearer {key}".encode() in sent.encode(RequestSpec(0, "hi", 1, 1, True))  # it is sent
    finally:
        del os.environ["MY_API_KEY"]
    outputs = []
    with MockProcess(FAST_MOCK) as m:
        r = inferprof("sweep", "--url", m.url, "--concurrency", "1,2", "--requests", "10", "--input-tokens", "8",
                      "--output-tokens", "4", "--api-key-env", "MY_API_KEY", "--out", str(tmp_path / "runs"),
                      env=env)
        assert r.returncode == 0, r.stderr
        outputs += [r.stdout, r.stderr]
        run_dir = next((tmp_path / "runs").iterdir())
        assert (run_dir / "report.html").exists()
        for args in (["report", str(run_dir), "--html"], ["sweep", "--url", "http://127.0.0.1:9", "--api-key-env",
                                                          "MY_API_KEY", "--out", str(tmp_path / "runs")]):
            r = inferprof(*args, env=env)
            outputs += [r.stdout, r.stderr]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10
    leaks = [str(p) for p in files if key.encode() in p.read_bytes()] + [o[:80] for o in outputs if key in o]
    assert not leaks
