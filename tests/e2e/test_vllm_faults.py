"""Faults against a REAL vLLM CPU server: the server killed (SIGKILL) with requests in flight and
started again (the sweep waits for it and finishes), and the sweep process killed with `kill -9` and resumed (finished
points byte for byte).

These tests stop and restart their server, so they run their OWN one on `VLLM_FAULTS_PORT`
(default 8032), never the session's shared server. `pytest -m vllm tests/e2e/test_vllm_faults.py`
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from vllm_helpers import REPO, VLLM_CPU, child_env, inferprof_cmd, tail

pytestmark = pytest.mark.vllm

START_TIMEOUT_S = 450
SWEEP = ["--input-tokens", "16", "--output-tokens", "16", "--no-report", "--no-telemetry", "--json"]


def _script(action: str, env: dict[str, str], timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(VLLM_CPU), action], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def own_vllm():
    env = {**os.environ, "VLLM_PORT": os.environ.get("VLLM_FAULTS_PORT", "8032"), "INFERPROF_NO_IMDS": "1"}
    env.setdefault("VLLM_START_TIMEOUT", "400")  # a restart on a loaded 2-core box takes minutes
    p = _script("setup", env, 1500)
    assert p.returncode == 0, tail(p.stderr)
    p = _script("start", env)
    assert p.returncode == 0, tail(p.stdout) + tail(p.stderr)
    url = p.stdout.strip().splitlines()[-1]
    try:
        yield url, env
    finally:
        _script("stop", env, 90)


def _wait_for(cond, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _running(url: str) -> float:
    """vLLM's vllm:num_requests_running now (0 when unreadable)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_requests_running"))


def _kill_server(env: dict[str, str]) -> None:
    cache = Path(env.get("INFERPROF_CACHE") or Path.home() / ".cache" / "inferprof")
    pid = int((cache / "vllm-cpu" / "run" / env["VLLM_PORT"] / "server.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # the script started it as the leader of its own group


def _parts_of_points_below(run_dir: Path, done: int) -> dict:
    """The request and chunk parts of points 0..done-1 (`point-PPPPP-…`, `events-PPPPP-…`)."""
    return {p.relative_to(run_dir): p.read_bytes()
            for folder in ("requests.parquet", "chunks.parquet") for p in sorted((run_dir / folder).glob("*.parquet"))
            if int(p.name.split("-")[1]) < done}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_server_killed_mid_sweep_and_restarted_the_sweep_waits_and_finishes(own_vllm, tmp_path):
    url, env = own_vllm
    sweep = subprocess.Popen([*inferprof_cmd(), "sweep", "--url", url, "--concurrency", "2,2,2,2", "--requests", "24",
                              *SWEEP, "--output-tokens", "64", "--server-down-wait", "480s", "--out", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
    try:
        _wait_for(lambda: any(_lines(p) >= 1 for p in tmp_path.glob("*/points.jsonl")), 600)
        _wait_for(lambda: _running(url) > 0, 300)  # point 1's requests are on the server
        killed_at = time.monotonic()
        _kill_server(env)  # SIGKILL, streams in flight
        assert _script("stop", env, 90).returncode == 0  # clears the pid file
        p = _script("start", env)
        assert p.returncode == 0, tail(p.stderr)
        restarted_s = time.monotonic() - killed_at
        out, err = sweep.communicate(timeout=900)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, tail(err)
    run_dir = Path(json.loads(out)["run_dir"])
    points = pd.read_csv(run_dir / "points.csv", keep_default_na=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    [event] = manifest["events"]
    print(f"\nserver down for {restarted_s:.0f} s; sweep waited {event['waited_s']} s at point {event['point']}; "
          f"points:\n{points[['point', 'requests', 'ok', 'errors', 'cancelled', 'error_kinds', 'stop_reason']]}")
    print(pd.read_parquet(run_dir / "requests.parquet").query("error != ''")[["point", "request", "error",
                                                                               "error_detail"]].to_string())
    assert event["back"] and event["waited_s"] > 0 and "ended" not in manifest
    assert len(points) == 4 and points.loc[0, "errors"] == 0
    lost = points.loc[event["point"]]
    assert lost["err_reset"] >= 1  # streams cut by the kill
    assert lost["ok"] + lost["errors"] + lost["cancelled"] == lost["requests"]
    after = points.loc[event["point"] + 1:]
    assert len(after) >= 1 and (after["errors"] == 0).all() and (after["ok"] == 24).all()


def test_sweep_killed_with_kill_9_resumes_with_finished_points_unchanged(own_vllm, tmp_path):
    url, _ = own_vllm
    sweep = subprocess.Popen([*inferprof_cmd(), "sweep", "--url", url, "--concurrency", "2,2,2", "--requests", "24",
                              *SWEEP, "--out", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
    try:
        _wait_for(lambda: any(_lines(p) >= 1 for p in tmp_path.glob("*/points.jsonl")), 600)
        run_dir = next(tmp_path.iterdir())
        _wait_for(lambda: any((run_dir / "requests.parquet").glob("point-00001-*")), 300)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    # What was finished when the sweep died (point 1 may have ended between the check and the kill
    # on a fast machine): those points' files must come through the resume byte for byte.
    done = _lines(run_dir / "points.jsonl")
    assert 1 <= done < 3
    before = _parts_of_points_below(run_dir, done)
    before_facts = (run_dir / "points.jsonl").read_bytes()
    # points.csv is rewritten after each point's points.jsonl line: a kill in between leaves it a row short
    before_rows = (run_dir / "points.csv").read_bytes().splitlines()[:1 + done]
    r = subprocess.run([*inferprof_cmd(), "sweep", "--resume", str(run_dir), "--no-report", "--json"],
                       capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=900)
    assert r.returncode == 0, tail(r.stderr)
    after = _parts_of_points_below(run_dir, done)
    assert after == before  # the finished points' parts, byte for byte
    assert (run_dir / "points.jsonl").read_bytes().startswith(before_facts)
    assert (run_dir / "points.csv").read_bytes().splitlines()[:len(before_rows)] == before_rows
    points = pd.read_csv(run_dir / "points.csv")
    req = pd.read_parquet(run_dir / "requests.parquet")
    print(f"\nresumed: {len(points)} points, requests per point {list(points['requests'])}, "
          f"discarded {json.loads((run_dir / 'manifest.json').read_text())['resumes'][0]['discarded_files']} files")
    assert list(points["point"]) == [0, 1, 2] and (points["requests"] == 24).all() and (points["ok"] == 24).all()
    assert len(req) == 72 and not req.duplicated(["point", "request"]).any()
