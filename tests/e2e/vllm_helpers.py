"""Helpers for the vLLM end-to-end tests (kept out of conftest.py so test modules can import
them by a unique name)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VLLM_CPU = REPO / "scripts" / "vllm_cpu.sh"
VLLM_SWEEP = REPO / "scripts" / "vllm_sweep.sh"
SERVED_NAME = "tiny-llama"
SWEEP_TIMEOUT_S = 600


def tail(text: str, n: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-n:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    raise AssertionError(f"no JSON object on stdout:\n{tail(stdout)}")


def run_sweep(url: str, out: Path, *args: str, model: str = SERVED_NAME) -> Path:
    """`inferprof sweep --url URL --model MODEL ARGS --json --out OUT`; returns the run folder."""
    cmd = [*inferprof_cmd(), "sweep", "--url", url, "--model", model, *args, "--json", "--out", str(out)]
    p = subprocess.run(
        cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"{' '.join(cmd)}\nexit {p.returncode}\n{tail(p.stdout)}\n{tail(p.stderr)}"
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


def order_stat_bucket(buckets: list[tuple[float, float]], k: int) -> tuple[float, float]:
    """(lower, upper) bound in seconds of the bucket holding the k-th smallest (1-based)
    observation of a cumulative histogram."""
    total = buckets[-1][1] if buckets else 0
    assert 1 <= k <= total, f"k={k} outside 1..{total}: {buckets}"
    lower = 0.0
    for le, cum in buckets:
        if cum >= k:
            return lower, le
        lower = le
    return lower, math.inf
