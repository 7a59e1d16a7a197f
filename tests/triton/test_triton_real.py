"""inferprof against a REAL tritonserver (CPU, PyTriton) over generate_stream and gRPC streaming,
and against the project's mock and a KServe server without the generate extension.

    pytest -m triton tests/triton
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from triton_helpers import FAIL_AFTER, ITL_MS, TTFT_MS, _start_mock, _stop_mock, cli, sweep

from backends.http1 import parse_url
from backends.records import ERR_SERVER, ERR_TIMEOUT, RawStream
from backends.triton import TritonGRPCCodec, TritonHTTPCodec, make_codec, resolve
from profiler.endpoint import Target
from profiler.loadgen import open_connection
from workloads.requests import RequestSpec

pytestmark = pytest.mark.triton

OUTPUT_TOKENS = 12
REQUESTS = 4
SWEEP_ARGS = ("--backend", "triton", "--concurrency", "1,2", "--requests", str(REQUESTS),
              "--input-tokens", "16", "--output-tokens", str(OUTPUT_TOKENS), "--warmup", "0")
CASES = [("http", "fake_llm"), ("http", "vllm_like"), ("grpc", "fake_llm"), ("grpc", "vllm_like")]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture(scope="module")
def runs(triton_server, tmp_path_factory) -> dict[tuple[str, str], object]:
    """One small two-point sweep per (protocol, model), run lazily and shared by the tests."""
    cache: dict = {}

    def get(protocol: str, model: str):
        key = (protocol, model)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{protocol}-{model}")
            cache[key] = sweep(out, "--url", _url(triton_server, protocol), "--protocol", protocol,
                               "--model", model, *SWEEP_ARGS)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def openai_run(tmp_path_factory):
    """The same sweep against the mock's OpenAI API: the reference run folder layout."""
    tmp = tmp_path_factory.mktemp("openai")
    # no prefix cache: the Triton routes have none, so neither run gains server_prefix_hit_rate
    proc, out, url = _start_mock(tmp, "--model", "mockllm", "--ttft-ms", "10", "--itl-ms", "2", "--prefix-block", "0")
    try:
        yield sweep(tmp, "--url", url, "--model", "mockllm", "--concurrency", "1,2", "--requests", str(REQUESTS),
                    "--input-tokens", "16", "--output-tokens", str(OUTPUT_TOKENS), "--warmup", "0")
    finally:
        _stop_mock(proc, out)


def _files(run_dir) -> set[str]:
    return {p.name for p in run_dir.iterdir() if p.suffix in (".parquet", ".csv", ".jsonl", ".json")}


@pytest.mark.parametrize("protocol,model", CASES)
def test_sweep_token_counts(runs, protocol, model):
    run_dir = runs(protocol, model)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 2 * REQUESTS and sorted(req.point.unique()) == [0, 1]
    assert (req.error == "").all(), req[["error", "error_detail"]].to_string()
    assert (req.status == 200).all()
    # every response carried num_output_tokens = 1: the sums are exact, one content chunk per token
    assert (req.usage_completion_tokens == OUTPUT_TOKENS).all()
    assert (req.n_content_chunks == OUTPUT_TOKENS).all()
    assert (req.n_events == OUTPUT_TOKENS).all()  # the empty final response is no event
    if model == "vllm_like":
        assert (req.usage_prompt_tokens > 0).all()  # num_input_tokens (the server counts words)
    else:
        assert (req.usage_prompt_tokens == -1).all()  # fake_llm does not report it
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    chunks = chunks[chunks.content]
    assert len(chunks) == len(req) * OUTPUT_TOKENS and (chunks.tokens == 1).all()


@pytest.mark.parametrize("protocol,model", CASES)
def test_sweep_per_response_timing(runs, protocol, model):
    """Chunk times follow the server's schedule (TTFT_MS, then ITL_MS per token); loose bounds only."""
    run_dir = runs(protocol, model)
    req = pd.read_parquet(run_dir / "requests.parquet")
    # the server sleeps TTFT_MS before its first response: a causal lower bound, not a timing guess
    ttft_ms = (req.first_content_ns - req.send_ns) / 1e6
    assert (ttft_ms >= TTFT_MS * 0.95).all(), ttft_ms.tolist()
    assert (req.last_content_ns >= req.first_content_ns).all() and (req.end_ns >= req.last_content_ns).all()
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    chunks = chunks[chunks.content].sort_values(["point", "request", "t_ns"])
    gaps_ms = chunks.groupby(["point", "request"]).t_ns.diff().dropna() / 1e6
    assert len(gaps_ms) == len(req) * (OUTPUT_TOKENS - 1)
    assert ITL_MS * 0.5 <= gaps_ms.median() <= ITL_MS * 10, gaps_ms.describe()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_run_folder_matches_openai_layout(runs, openai_run, protocol):
    run_dir = runs(protocol, "fake_llm")
    assert _files(run_dir) >= {"requests.parquet", "chunks.parquet", "points.csv", "points.jsonl", "manifest.json"}
    assert _files(run_dir) == _files(openai_run)
    for name in ("requests.parquet", "chunks.parquet"):
        assert list(pd.read_parquet(run_dir / name).columns) == list(pd.read_parquet(openai_run / name).columns)
    assert list(pd.read_csv(run_dir / "points.csv").columns) == list(pd.read_csv(openai_run / "points.csv").columns)
    import json

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["endpoint"]["backend"] == "triton"
    assert manifest["triton"]["protocol"] == protocol and manifest["triton"]["style"] == "trtllm"
    assert manifest["triton"]["decoupled"] is True and manifest["triton"]["server_version"] == "2.51.0"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unknown_model_exits_2_with_one_line(triton_server, tmp_path, protocol):
    p = cli("sweep", "--backend", "triton", "--protocol", protocol, "--url", _url(triton_server, protocol),
            "--model", "nope", "--requests", "1", "--concurrency", "1", "--out", str(tmp_path), "--no-report")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "'nope' is not served" in lines[0] and "fake_llm" in lines[0] and "vllm_like" in lines[0]


def test_resolve_without_model_needs_one_served_model(triton_server):
    t = Target(url=triton_server.http_url, model="", backend="triton")
    with pytest.raises(Exception, match="--model is required.*fake_llm"):
        resolve(t, "http")


def test_server_without_generate_extension_exits_2(no_generate_server, tmp_path):
    p = cli("sweep", "--backend", "triton", "--url", no_generate_server, "--model", "llm",
            "--requests", "1", "--concurrency", "1", "--out", str(tmp_path), "--no-report")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no generate extension" in lines[0] and "--protocol grpc" in lines[0], p.stderr
    # the lone model is picked when --model is empty
    t = Target(url=no_generate_server, model="", backend="triton")
    with pytest.raises(Exception, match="no generate extension"):
        resolve(t, "http")
    assert t.model == ""  # nothing stored on failure


def test_real_triton_lists_no_generate_extension_but_has_it(triton_server):
    """tritonserver 2.51 omits "generate" from GET /v2 extensions: resolve must probe, not trust it."""
    t = resolve(Target(url=triton_server.http_url, model="fake_llm", backend="triton"), "http")
    assert t.extra_manifest["triton"]["style"] == "trtllm"


def _one_request(codec, max_tokens: int) -> tuple[RawStream, object]:
    conn = open_connection(codec, codec.endpoint, 30.0)
    raw = RawStream()
    try:
        req = RequestSpec(0, "one two three", 3, max_tokens, False)
        conn.stream(codec.encode(req), raw, time.perf_counter_ns() + 60_000_000_000)
    finally:
        conn.close()
    return raw, codec.parse(raw)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_model_error_mid_stream_is_server_error(triton_server, protocol):
    """failing_llm raises after FAIL_AFTER responses: an error event under HTTP 200 / an error
    response on the gRPC stream; what came before is kept."""
    url = _url(triton_server, protocol)
    target = resolve(Target(url=url, model="failing_llm", backend="triton"), protocol)
    codec = make_codec(parse_url(url), target)
    assert isinstance(codec, TritonGRPCCodec if protocol == "grpc" else TritonHTTPCodec)
    raw, p = _one_request(codec, 8)
    assert raw.status == 200
    assert p.error == ERR_SERVER and "fake failure" in p.error_detail, (p.error, p.error_detail)
    assert len(p.content_ns) == FAIL_AFTER and p.usage_completion_tokens == FAIL_AFTER
    # the same connection object type works again afterwards (gRPC: the stream survives a model error)
    raw2, p2 = _one_request(codec, 2)
    assert p2.error == ERR_SERVER or len(p2.content_ns) == 2


def test_grpc_stream_reused_across_requests(triton_server):
    url = triton_server.grpc_url
    target = resolve(Target(url=url, model="failing_llm", backend="triton"), "grpc")
    codec = make_codec(parse_url(url), target)
    conn = codec.connection(30.0)
    try:
        results = []
        for n in (8, 2, 8, 1):  # errors and successes alternate on one stream
            raw = RawStream()
            conn.stream(codec.encode(RequestSpec(0, "a b", 2, n, False)), raw,
                        time.perf_counter_ns() + 60_000_000_000)
            results.append(codec.parse(raw))
    finally:
        conn.close()
    assert [r.error for r in results] == [ERR_SERVER, "", ERR_SERVER, ""]
    assert [len(r.content_ns) for r in results] == [FAIL_AFTER, 2, FAIL_AFTER, 1]
    assert len({r.response_id for r in results}) == 4


def test_grpc_read_timeout_then_fresh_stream(triton_server):
    """No response within the read timeout (TTFT is 20 ms) is a timeout; the connection then
    opens a new stream, so the late responses cannot leak into the next request."""
    url = triton_server.grpc_url
    codec = make_codec(parse_url(url), resolve(Target(url=url, model="fake_llm", backend="triton"), "grpc"))
    conn = codec.connection(0.002)
    try:
        raw = RawStream()
        conn.stream(codec.encode(RequestSpec(0, "a", 1, 8, False)), raw, time.perf_counter_ns() + 10**10)
        assert raw.error == ERR_TIMEOUT and "no response" in raw.error_detail  # gRPC: its deadline
        conn.read_timeout = 30.0
        raw = RawStream()
        conn.stream(codec.encode(RequestSpec(0, "a", 1, 3, False)), raw, time.perf_counter_ns() + 6 * 10**10)
        p = codec.parse(raw)
        assert not p.error and len(p.content_ns) == 3 and p.usage_completion_tokens == 3
    finally:
        conn.close()


def test_mock_generate_stream(mock_server, tmp_path):
    """The project's mock speaks generate_stream too (vLLM-backend style, counts on request)."""
    mock = mock_server()
    run_dir = sweep(tmp_path, "--url", mock.url, "--model", mock.model, *SWEEP_ARGS)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert (req.error == "").all() and (req.usage_completion_tokens == OUTPUT_TOKENS).all()
    assert (req.usage_prompt_tokens > 0).all() and (req.n_content_chunks == OUTPUT_TOKENS).all()


def test_mock_error_event_under_200(mock_server, tmp_path):
    mock = mock_server("--triton-error-after", "3")
    run_dir = sweep(tmp_path, "--url", mock.url, "--model", mock.model, *SWEEP_ARGS)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert (req.status == 200).all()
    assert (req.error == ERR_SERVER).all(), req[["error", "error_detail"]].to_string()
    assert req.error_detail.str.contains("after 3 responses").all()
    assert (req.n_content_chunks == 3).all() and (req.usage_completion_tokens == 3).all()
