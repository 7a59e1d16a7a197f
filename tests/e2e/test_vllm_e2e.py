"""inferprof against a REAL vLLM server (CPU build, tiny random Llama); see conftest.py.

No test asserts on speed: the 2-core CI machine is shared and vLLM's timings swing several-fold.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from vllm_helpers import (
    REPO,
    SERVED_NAME,
    VLLM_SWEEP,
    child_env,
    free_port,
    histogram_delta,
    http_get,
    http_post_json,
    order_stat_bucket,
    run_sweep,
    sample_sum,
    scrape,
)

pytestmark = pytest.mark.vllm

GEN_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
TTFT_HIST = "vllm:time_to_first_token_seconds"
SUCCESS = "vllm:request_success_total"
# `inferprof sweep` sends one short test request before the first point (profiler/endpoint.py:
# preflight, max_tokens=2) and does not record it in requests.parquet.
PREFLIGHT_REQUESTS = 1
PREFLIGHT_TOKENS = 2


def _requests(run_dir) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "requests.parquet")


def _points(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "points.csv")


def _no_errors(req: pd.DataFrame) -> None:
    bad = req[req["error"].fillna("").astype(str) != ""]
    assert bad.empty, bad[["point", "request", "error", "error_detail"]].head(10).to_string()


@pytest.fixture(scope="module")
def three_point_sweep(vllm_url, tmp_path_factory):
    """The 3-point concurrency sweep, with /metrics scraped just before and just after it."""
    out = tmp_path_factory.mktemp("sweep3")
    before = scrape(vllm_url)
    run_dir = run_sweep(
        vllm_url, out, "--concurrency", "1,2,4", "--requests", "12", "--input-tokens", "32",
        "--output-tokens", "32",
    )
    after = scrape(vllm_url)
    return run_dir, before, after


def test_server_is_real_vllm(vllm_url):
    models = json.loads(http_get(vllm_url + "/v1/models"))
    assert [m["id"] for m in models["data"]] == [SERVED_NAME]
    assert json.loads(http_get(vllm_url + "/version"))["version"].startswith("0.32.0")
    assert "vllm:num_requests_running" in http_get(vllm_url + "/metrics")


def test_three_point_concurrency_sweep(three_point_sweep):
    run_dir, _, _ = three_point_sweep
    for name in ("manifest.json", "requests.parquet", "chunks.parquet", "points.csv"):
        assert (run_dir / name).exists(), f"{name} missing in {run_dir}: {os.listdir(run_dir)}"
    points = _points(run_dir)
    assert len(points) == 3, points
    assert points["concurrency"].tolist() == [1, 2, 4]
    assert (points["errors"] == 0).all(), points[["point", "errors", "error_kinds"]]
    assert (points["requests"] == 12).all(), points[["point", "requests"]]
    req = _requests(run_dir)
    assert len(req) == 36
    assert req.groupby("point").size().tolist() == [12, 12, 12]
    _no_errors(req)
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    assert len(chunks) > 0
    assert sorted(chunks["point"].unique().tolist()) == [0, 1, 2]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["endpoint"]["model"] == SERVED_NAME


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_output_tokens_equal_max_tokens(vllm_url, tmp_path, api):
    """The tiny model never emits EOS and the client asks for ignore_eos: every request must get
    exactly max_tokens, as the server's usage reports."""
    run_dir = run_sweep(
        vllm_url, tmp_path, "--api", api, "--concurrency", "2", "--requests", "8", "--input-tokens", "24",
        "--output-tokens", "24",
    )
    req = _requests(run_dir)
    assert len(req) == 8
    _no_errors(req)
    assert (req["max_tokens"] == 24).all(), req["max_tokens"].tolist()
    assert (req["usage_completion_tokens"] == req["max_tokens"]).all(), (
        req[["request", "max_tokens", "usage_completion_tokens"]].to_string()
    )
    assert (req["usage_prompt_tokens"] > 0).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["endpoint"]["api"] == api


def test_chunks_vs_tokens_recorded(three_point_sweep):
    """vLLM may pack several tokens into one SSE chunk under load: the client counts chunks per
    request, and the point summary shows tokens per chunk."""
    run_dir, _, _ = three_point_sweep
    req = _requests(run_dir)
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    chunks = chunks[chunks["content"]]
    points = _points(run_dir)
    assert (req["n_content_chunks"] >= 1).all()
    assert (req["n_content_chunks"] <= req["usage_completion_tokens"]).all(), (
        req[["point", "request", "n_content_chunks", "usage_completion_tokens"]].to_string()
    )
    # chunks.parquet has one row per content chunk of each request
    per_req = chunks.groupby(["point", "request"]).size()
    recorded = req.set_index(["point", "request"])["n_content_chunks"]
    pd.testing.assert_series_equal(
        per_req.sort_index(), recorded.sort_index(), check_names=False, check_dtype=False
    )
    for p, grp in req.groupby("point"):
        row = points[points["point"] == p].iloc[0]
        expected = grp["usage_completion_tokens"].sum() / grp["n_content_chunks"].sum()
        assert row["tokens_per_chunk_mean"] >= 1.0
        assert math.isclose(row["tokens_per_chunk_mean"], expected, rel_tol=1e-5)  # csv: 6 digits, (p, row["tokens_per_chunk_mean"], expected)


def test_metrics_generation_tokens_match_usage(three_point_sweep):
    """vllm:generation_tokens_total grows by exactly the completion tokens the client recorded
    (nothing else talks to this server during the sweep)."""
    run_dir, before, after = three_point_sweep
    req = _requests(run_dir)
    pre = json.loads((run_dir / "manifest.json").read_text())["preflight"]
    assert pre["usage_completion_tokens"] == PREFLIGHT_TOKENS
    recorded = int(req["usage_completion_tokens"].sum())
    grew = sample_sum(after, GEN_TOKENS) - sample_sum(before, GEN_TOKENS)
    assert grew == recorded + PREFLIGHT_TOKENS, (
        f"{GEN_TOKENS} grew by {grew:g}; client recorded {recorded} + {PREFLIGHT_TOKENS} preflight tokens"
    )
    succeeded = sample_sum(after, SUCCESS) - sample_sum(before, SUCCESS)
    assert succeeded == len(req) + PREFLIGHT_REQUESTS, (succeeded, len(req))
    grew_prompt = sample_sum(after, PROMPT_TOKENS) - sample_sum(before, PROMPT_TOKENS)
    # the preflight's own prompt tokens are in the manifest
    assert grew_prompt == req["usage_prompt_tokens"].sum() + pre["usage_prompt_tokens"], (
        grew_prompt, int(req["usage_prompt_tokens"].sum()), pre)


def test_client_ttft_not_below_server_ttft(vllm_url, tmp_path):
    """The client's TTFT of a request includes everything the server's does (plus HTTP, network),
    so the client's median cannot be below the server's. The server's TTFTs are only known as a
    histogram (with the sweep's uncounted preflight request in it), so compare with a bound that
    holds whatever the extra observations are: the median of the client's n requests is >= the
    ceil(n/2)-th smallest server observation >= the lower edge of the bucket holding it."""
    n = 10
    before = scrape(vllm_url)
    run_dir = run_sweep(
        vllm_url, tmp_path, "--concurrency", "1", "--requests", str(n), "--input-tokens", "32",
        "--output-tokens", "8", "--warmup", "0",
    )
    after = scrape(vllm_url)
    buckets = histogram_delta(before, after, TTFT_HIST)
    total = int(buckets[-1][1]) if buckets else 0
    assert total == n + PREFLIGHT_REQUESTS, buckets  # one observation per request
    extra = total - n

    req = _requests(run_dir)
    _no_errors(req)
    assert len(req) == n
    lower_s, _ = order_stat_bucket(buckets, math.ceil(n / 2))
    client_ttft_ms = (req["first_content_ns"] - req["send_ns"]) / 1e6
    assert float(np.median(client_ttft_ms)) >= lower_s * 1e3, (client_ttft_ms.tolist(), buckets)

    row = _points(run_dir).iloc[0]
    for col in ("ttft_p50_ms", "server_ttft_p50_ms", "ttft_overhead_ms"):
        assert col in row.index and math.isfinite(row[col]), (col, row.to_dict())
    m = int(row["requests"])  # requests in the point's percentiles (no warmup share left out)
    lower_m, _ = order_stat_bucket(buckets, max(1, math.ceil(m / 2) - (n - m)))
    assert row["ttft_p50_ms"] >= lower_m * 1e3, (row["ttft_p50_ms"], buckets)
    # the sweep's own server median (from /metrics scraped around the point, preflight excluded)
    # lies between the buckets of the ceil(n/2)-th and the (ceil(n/2)+1+extra)-th observations
    lo, _ = order_stat_bucket(buckets, math.ceil(n / 2))
    _, hi = order_stat_bucket(buckets, min(total, math.ceil(n / 2) + 1 + extra))
    assert lo * 1e3 - 1e-3 <= row["server_ttft_p50_ms"] <= hi * 1e3 + 1e-3, (row["server_ttft_p50_ms"], buckets)
    # overhead = client - server (points.csv keeps 6 significant digits)
    assert math.isclose(row["ttft_overhead_ms"], row["ttft_p50_ms"] - row["server_ttft_p50_ms"], abs_tol=1e-3)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_prompt_calibration_through_tokenize(vllm_url, tmp_path, api):
    """No local tokenizer: the client sizes each prompt with the server's /tokenize, counting as the
    server bills (BOS for completions, the chat template for chat). The count it records
    (`input_tokens`) must be exactly what the server's usage reports, and hit 40 when it says exact."""
    run_dir = run_sweep(
        vllm_url, tmp_path, "--api", api, "--concurrency", "2", "--requests", "6", "--input-tokens", "40",
        "--output-tokens", "4",
    )
    req = _requests(run_dir)
    _no_errors(req)
    table = req[["request", "input_tokens", "input_exact", "usage_prompt_tokens"]].to_string()
    assert (req["usage_prompt_tokens"] == req["input_tokens"]).all(), table
    assert (req["input_exact"] == (req["input_tokens"] == 40)).all(), table
    assert (req["input_tokens"] - 40).abs().max() <= 3, table
    assert req["input_exact"].sum() >= len(req) // 2, table
    # the tokens the server adds are part of the count: /tokenize of a bare text agrees with usage
    text = "the quick brown fox jumps over the lazy dog"
    bare = http_post_json(vllm_url + "/tokenize", {"model": SERVED_NAME, "prompt": text, "add_special_tokens": False})
    if api == "completions":
        full = http_post_json(vllm_url + "/tokenize", {"model": SERVED_NAME, "prompt": text})
    else:
        full = http_post_json(vllm_url + "/tokenize", {
            "model": SERVED_NAME, "messages": [{"role": "user", "content": text}], "add_generation_prompt": True})
    assert full["count"] > bare["count"]  # BOS / template tokens exist, so counting them matters


def test_vllm_sweep_script_cpu(vllm_url, tmp_path):
    """scripts/vllm_sweep.sh starts its own server (another port), sweeps, records `server` in the
    manifest, stops the server and prints the run folder last."""
    port = free_port()
    env = child_env({"INFERPROF_CMD": f"{sys.executable} -m profiler.cli", "INFERPROF_NO_IMDS": "1"})
    cmd = [
        "bash", str(VLLM_SWEEP), "--cpu", "--model", "tiny", "--port", str(port), "--",
        "--concurrency", "1,2", "--requests", "6", "--input-tokens", "16", "--output-tokens", "16",
        "--out", str(tmp_path),
    ]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    run_dir = tmp_path / os.path.relpath(p.stdout.strip().splitlines()[-1], tmp_path)
    assert run_dir.is_dir(), p.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    server = manifest["server"]
    assert server["vllm_version"].startswith("0.32.0"), server
    assert server["device"] == "cpu"
    assert server["served_model_name"] == "tiny-llama"
    assert "serve" in server["command"] and str(port) in server["command"]
    assert server["cloud"] is None  # INFERPROF_NO_IMDS=1: never asked
    assert manifest["endpoint"]["model"] == "tiny-llama"
    points = _points(run_dir)
    assert len(points) == 2 and (points["errors"] == 0).all(), points
    assert (run_dir / "vllm-server.log").is_file()
    # the server is gone (stopped by the script's EXIT trap)
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/health", timeout=2)
