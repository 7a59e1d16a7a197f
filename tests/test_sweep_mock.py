"""The spine end to end: the CLI drives the mock server (its own process, real sockets)."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import inferprof

from backends.mock.engine import expected_steady_state
from backends.mock.perfmodel import decode_step_s, get_preset, prefill_s
from profiler.mockproc import MockProcess

ROOT = Path(__file__).resolve().parents[1]
# Slow steps on purpose: a 10 ms decode step dwarfs this noisy 2-core machine's jitter.
MOCK = ["--preset", "tiny-cpu", "--decode-base-ms", "10", "--decode-per-seq-us", "500"]
PRESET = get_preset("tiny-cpu", decode_base_ms=10.0, decode_per_seq_us=500.0)


@pytest.fixture(scope="module")
def mock():
    with MockProcess(MOCK) as m:
        yield m


@pytest.fixture(scope="module")
def sweep(mock, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = inferprof("sweep", "--url", mock.url, "--concurrency", "1,4,16,32", "--requests", "48",
                  "--input-tokens", "32", "--output-tokens", "24", "--slo", "ttft_p99=2s,tpot_p99=200ms",
                  "--out", str(out), "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    return Path(result["run_dir"]), result


def test_sweep_writes_the_run_folder(sweep):
    run_dir, result = sweep
    for name in ("manifest.json", "points.jsonl", "requests.parquet", "chunks.parquet", "points.csv"):
        assert (run_dir / name).exists(), name
    points = pd.read_csv(run_dir / "points.csv")
    assert list(points["concurrency"]) == [1, 4, 16, 32]
    assert len(result["points"]) == 4
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 4 * 48 and (req["error"] == "").all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["endpoint"]["model"] == "mock-llm"
    assert manifest["slos"] == {"ttft_p99": 2.0, "tpot_p99": 0.2}
    facts = [json.loads(line) for line in (run_dir / "points.jsonl").read_text().splitlines()]
    for f in facts:  # the loop's lag samples, merged from the workers' histograms (backends/laghist.py)
        c = f["client"]
        assert c["lag_samples"] > 0 and 0 <= c["lag_p99_ms"] <= c["lag_max_ms"]


def test_latency_and_throughput_follow_the_mock_model(sweep):
    run_dir, _ = sweep
    points = pd.read_csv(run_dir / "points.csv")
    req = pd.read_parquet(run_dir / "requests.parquet")
    prompt = int(req["usage_prompt_tokens"].median())
    for _, p in points.iterrows():
        c = int(p["concurrency"])
        ttft_s, itl_s, tok_s = expected_steady_state(PRESET, c, prompt, 24)
        # per-token ITL is at least the decode step of the batch: the engine cannot go faster
        assert p["itl_token_p50_ms"] >= 0.95 * decode_step_s(PRESET, c, 0) * 1e3
        # within 25 % of the model (CPU noise only ever makes the mock slower)
        assert p["itl_token_mean_ms"] == pytest.approx(itl_s * 1e3, rel=0.25)
        assert p["output_tok_per_s"] == pytest.approx(tok_s, rel=0.25)
        # TTFT: at least one prefill, and within a few steps of the model's expectation
        assert p["ttft_p50_ms"] >= prefill_s(PRESET, prompt) * 1e3
        assert p["ttft_mean_ms"] <= ttft_s * 1e3 + 3 * decode_step_s(PRESET, c, 0) * 1e3
    # the serving curve's shape: throughput rises with concurrency, ITL rises with batch size
    assert points["output_tok_per_s"].is_monotonic_increasing
    assert points["itl_token_p50_ms"].is_monotonic_increasing


def test_output_tokens_equal_server_usage_chat(sweep):
    run_dir, _ = sweep
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert (req["usage_completion_tokens"] == req["max_tokens"]).all()
    # the mock sends one token per chunk: chunks counted by the client match usage exactly
    assert (req["n_content_chunks"] == req["usage_completion_tokens"]).all()
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    assert chunks["content"].sum() == req["usage_completion_tokens"].sum()
    # every other event is kept too: the role prelude, the usage chunk and [DONE] of each request
    other = chunks[~chunks["content"]].groupby(["point", "request"]).size()
    expected = req.set_index(["point", "request"])["n_events"] - req.set_index(["point", "request"])["n_content_chunks"]
    assert (other.sort_index() == expected.sort_index()).all() and (expected == 3).all()


def test_output_tokens_equal_server_usage_completions_with_multi_token_chunks(tmp_path):
    with MockProcess(["--preset", "tiny-cpu", "--tokens-per-chunk", "3"]) as m:
        r = inferprof("sweep", "--url", m.url, "--api", "completions", "--concurrency", "2", "--requests", "8",
                      "--output-tokens", "uniform:5,20", "--out", str(tmp_path), "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert (req["usage_completion_tokens"] == req["max_tokens"]).all()
    assert (req["n_content_chunks"] == (req["max_tokens"] + 2) // 3).all()
    points = pd.read_csv(run_dir / "points.csv")
    expected = req["max_tokens"].sum() / ((req["max_tokens"] + 2) // 3).sum()
    assert points.loc[0, "tokens_per_chunk_mean"] == pytest.approx(expected)


def test_report_reproduces_points_csv_exactly(sweep, tmp_path):
    run_dir, _ = sweep
    r = inferprof("report", str(run_dir), "--format", "csv", "--all-columns")
    assert r.returncode == 0, r.stderr
    original = (run_dir / "points.csv").read_text()
    from profiler.points import summarize_run
    from profiler.runfolder import write_points_csv

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "points.csv").unlink()
    write_points_csv(copy, summarize_run(copy))
    assert (copy / "points.csv").read_text() == original


def test_open_loop_records_achieved_rate(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--rate", "20", "--requests", "30", "--output-tokens", "8",
                  "--arrival", "constant", "--out", str(tmp_path), "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["points"][0]
    assert p["mode"] == "rate" and p["rate_target"] == 20
    # 30 constant arrivals at 20/s: 29 gaps of 50 ms
    assert p["rate_achieved"] == pytest.approx(20, rel=0.1)
    assert p["requests"] == 30 and p["errors"] == 0


def test_failing_server_requests_are_counted_per_point(tmp_path):
    with MockProcess(["--preset", "tiny-cpu", "--fail-rate", "0.3", "--seed", "3"]) as m:
        r = inferprof("sweep", "--url", m.url, "--concurrency", "1,4", "--requests", "40", "--output-tokens", "8",
                      "--out", str(tmp_path), "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)["points"]
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    req = pd.read_parquet(run_dir / "requests.parquet")
    for p in points:
        mine = req[req["point"] == p["point"]]
        assert p["errors"] == (mine["error"] != "").sum() > 0
        assert p["ok"] + p["errors"] == 40
        assert set(mine.loc[mine["error"] != "", "status"]) == {500}


def test_server_dying_mid_sweep_keeps_finished_points(tmp_path):
    m = MockProcess(["--preset", "tiny-cpu"]).start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "profiler.cli", "sweep", "--url", m.url, "--concurrency", "1,1,1,1,1,1",
             "--requests", "30", "--output-tokens", "16", "--out", str(tmp_path), "--no-report",
             "--server-down-wait", "1s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        # stop the server once the first point is on disk
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(tmp_path.glob("*/points.csv")):
            time.sleep(0.05)
        m.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        m.stop()
    assert proc.returncode == 2
    assert "Traceback" not in err
    run_dir = next(tmp_path.iterdir())
    points = pd.read_csv(run_dir / "points.csv")
    assert len(points) >= 1 and points.loc[0, "errors"] == 0


@pytest.mark.parametrize("args, words", [
    (["--concurrency", "1,x"], "--concurrency"),
    (["--concurrency", "0"], "positive"),
    (["--slo", "ttft_p99=fast"], "invalid duration"),
    (["--slo", "latency=5ms"], "invalid SLO"),
    (["--api", "embeddings"], "invalid choice"),
    (["--input-tokens", "gaussian:1"], "bad length"),
    (["--url", "http://127.0.0.1:9"], "cannot reach"),
    (["--url", "ftp://127.0.0.1:9"], "http://"),
    (["--url", "https://127.0.0.1:9"], "cannot reach"),
    (["--bogus-flag"], "unrecognized"),
])
def test_bad_input_one_line_exit_2(args, words, tmp_path):
    r = inferprof("sweep", *args, "--out", str(tmp_path), "--requests", "2")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


class _NotOpenAI(http.server.BaseHTTPRequestHandler):
    """/v1/models works, but completions answer plain JSON (a server that does not stream)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/v1/models":
            body = b'{"object":"list","data":[{"id":"m"}]}'
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"id":"x","choices":[{"message":{"content":"hi"}}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def plain_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotOpenAI)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_endpoint_that_is_not_openai_compatible(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    srv.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = inferprof("sweep", "--url", f"http://127.0.0.1:{srv.server_address[1]}", "--out", str(tmp_path))
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 2 and "not an OpenAI-compatible endpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_endpoint_that_does_not_stream(plain_server, tmp_path):
    r = inferprof("sweep", "--url", plain_server, "--concurrency", "1", "--requests", "3", "--out", str(tmp_path),
                  "--json", "--no-report")
    assert r.returncode == 2, r.stderr
    assert "does not stream" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_unknown_model_lists_served_models(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--model", "nope", "--out", str(tmp_path))
    assert r.returncode == 2 and "it serves: mock-llm" in r.stderr


def test_duration_mode_two_workers_and_local_tokenizer(mock, tmp_path):
    tok = ROOT / "tests" / "fixtures" / "tokenizer"
    r = inferprof("sweep", "--url", mock.url, "--concurrency", "8", "--duration", "2s", "--workers", "2",
                  "--input-tokens", "24", "--output-tokens", "16", "--tokenizer", str(tok), "--out", str(tmp_path),
                  "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    req = pd.read_parquet(run_dir / "requests.parquet")
    facts = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
    # both worker processes carried streams, and no request left after the duration ended
    assert set(req["worker"]) == {0, 1} and facts[0]["workers"] == 2
    assert (req["send_ns"] < facts[0]["stop_ns"]).all()
    assert req["request"].is_unique
    done = req[req["error"] == ""]
    assert len(done) > 16  # 2 s of 8 streams at ~10 ms per token: many rounds
    # prompts are exact with the local tokenizer, and the client counted every output with it
    assert req["input_exact"].all() and (req["input_tokens"] == 24).all()
    assert (done["client_output_tokens"] > 0).all()
    p = json.loads(r.stdout)["points"][0]
    assert p["cancelled"] + p["ok"] + p["errors"] == len(req)


def test_open_loop_cap_shows_client_queue_and_is_untrusted(mock, tmp_path):
    # 50 req/s against a 2-request cap of ~0.25 s requests: arrivals must wait in the client
    r = inferprof("sweep", "--url", mock.url, "--rate", "50", "--requests", "20", "--max-concurrency", "2",
                  "--output-tokens", "20", "--arrival", "constant", "--out", str(tmp_path), "--json", "--no-report")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    req = pd.read_parquet(run_dir / "requests.parquet")
    queue_ms = (req["send_ns"] - req["scheduled_ns"]) / 1e6
    assert (queue_ms >= 0).all() and queue_ms.max() > 100
    # never more than two in flight: each send waits for an earlier request to end
    ends = sorted(req["end_ns"])
    sends = sorted(req["send_ns"])
    assert all(sends[i] >= ends[i - 2] for i in range(2, len(sends)))
    p = json.loads(r.stdout)["points"][0]
    assert p["trusted"] is False and "client queue" in p["trust_reason"] and p["rate_achieved"] < 50
