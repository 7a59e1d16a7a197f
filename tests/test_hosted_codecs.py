"""The Anthropic Messages and OpenAI Responses codecs read the same generation, delivered in the same
recv() pieces, into the same record as the OpenAI chat codec: golden bytes with reasoning
(thinking) and usage events, written here in each API's published shape
(../shared/reference/formats.md §5-7); then the same through the mock server, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import inferprof

from backends.anthropic import AnthropicCodec, parse_anthropic_stream
from backends.http1 import parse_url
from backends.openai import parse_openai_stream
from backends.records import ERR_HTTP_429, ERR_SERVER, RawStream
from backends.responses import ResponsesCodec, parse_responses_stream
from profiler.mockproc import MockProcess
from workloads.requests import RequestSpec

HEAD_SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def raw_of(recvs: list[bytes], head: bytes = HEAD_SSE, status: int = 200) -> RawStream:
    """A recorded response: recv i arrived at (i + 1) ms; the last ends with the zero chunk."""
    recvs = [chunk(r) for r in recvs]
    recvs[-1] += b"0\r\n\r\n"
    return RawStream(send_ns=0, headers_ns=500_000, end_ns=len(recvs) * 1_000_000, status=status, chunked=True,
                     header_bytes=head, recv_ns=[(i + 1) * 1_000_000 for i in range(len(recvs))], recv_bytes=recvs)


def sse(obj: dict, event: str = "") -> bytes:
    name = b"event: %b\n" % event.encode() if event else b""
    return name + b"data: " + json.dumps(obj).encode() + b"\n\n"


# One generation: reasoning "Let me", then the answer " Hi" " there", 20 + 1024 cached prompt tokens,
# 57 output tokens, stopped by the token limit. recv 1 brings the start (and the reasoning), recv 2 two
# answer pieces at once (a burst), recv 3 the end and the usage.
OPENAI = [
    sse({"id": "c1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "usage": None})
    + b": keep-alive\n\n"
    + sse({"id": "c1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"reasoning": "Let me"}, "finish_reason": None}], "usage": None}),
    sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": " Hi"}, "finish_reason": None}], "usage": None})
    + sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "length"}],
           "usage": None}),
    sse({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1044, "completion_tokens": 57, "total_tokens": 1101,
                                              "prompt_tokens_details": {"cached_tokens": 1024},
                                              "completion_tokens_details": {"reasoning_tokens": 2}}})
    + b"data: [DONE]\n\n",
]

ANTHROPIC = [
    sse({"type": "message_start", "message": {
        "id": "c1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 1024, "output_tokens": 1}}}, "message_start")
    + sse({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
          "content_block_start")
    + sse({"type": "ping"}, "ping")
    + sse({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}},
          "content_block_delta")
    + sse({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}},
          "content_block_delta"),
    sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    + sse({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
          "content_block_start")
    + sse({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " Hi"}},
          "content_block_delta")
    + sse({"type": "message_delta", "delta": {"stop_reason": None, "stop_sequence": None},
           "usage": {"output_tokens": 30}}, "message_delta")
    + sse({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " there"}},
          "content_block_delta"),
    sse({"type": "content_block_stop", "index": 1}, "content_block_stop")
    + sse({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
           "usage": {"output_tokens": 57}}, "message_delta")
    + sse({"type": "message_stop"}, "message_stop"),
]

RESPONSES = [
    sse({"type": "response.created", "sequence_number": 0,
         "response": {"id": "c1", "status": "in_progress", "output": []}}, "response.created")
    + sse({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
           "item": {"id": "rs_1", "type": "reasoning", "summary": []}}, "response.output_item.added")
    + sse({"type": "response.reasoning_text.delta", "sequence_number": 2, "item_id": "rs_1", "output_index": 0,
           "content_index": 0, "delta": "Let me"}, "response.reasoning_text.delta"),
    sse({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 1,
         "content_index": 0, "delta": " Hi", "logprobs": []}, "response.output_text.delta")
    + sse({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1", "output_index": 1,
           "content_index": 0, "delta": " there", "logprobs": []}, "response.output_text.delta"),
    sse({"type": "response.output_text.done", "sequence_number": 5, "item_id": "msg_1", "output_index": 1,
         "content_index": 0, "text": " Hi there"}, "response.output_text.done")
    + sse({"type": "response.incomplete", "sequence_number": 6, "response": {
        "id": "c1", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 1044, "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
                  "output_tokens": 57, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 1101}}},
        "response.incomplete"),
]

RECORD = ("content_ns", "content_tokens", "text", "usage_prompt_tokens", "usage_completion_tokens",
          "usage_cached_tokens", "response_id", "finish_reason", "bursts", "error")


def record(p) -> dict:
    return {k: getattr(p, k) for k in RECORD}


def test_golden_streams_parse_to_the_same_record():
    want = record(parse_openai_stream(raw_of(OPENAI)))
    assert want == {"content_ns": [1_000_000, 2_000_000, 2_000_000], "content_tokens": [-1, -1, -1],
                    "text": "Let me Hi there", "usage_prompt_tokens": 1044, "usage_completion_tokens": 57,
                    "usage_cached_tokens": 1024, "response_id": "c1", "finish_reason": "length", "bursts": 1,
                    "error": ""}
    assert record(parse_anthropic_stream(raw_of(ANTHROPIC))) == want
    assert record(parse_responses_stream(raw_of(RESPONSES))) == want


def test_anthropic_output_tokens_are_cumulative_and_errors_classified():
    p = parse_anthropic_stream(raw_of(ANTHROPIC[:2] + [sse({"type": "message_stop"}, "message_stop")]))
    assert p.usage_completion_tokens == 30  # the last cumulative value seen, never a sum
    err = sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    p = parse_anthropic_stream(raw_of([ANTHROPIC[0], err]))
    assert p.error == ERR_SERVER and "overloaded_error" in p.error_detail


def test_responses_failed_and_split_events():
    failed = sse({"type": "response.failed", "sequence_number": 9, "response": {
        "id": "c1", "status": "failed", "error": {"code": "server_error", "message": "boom"}}}, "response.failed")
    p = parse_responses_stream(raw_of([RESPONSES[0], failed]))
    assert p.error == ERR_SERVER and "server_error" in p.error_detail and p.text == "Let me"
    whole = b"".join(RESPONSES)  # the same bytes cut at arbitrary points: same content, same text
    pieces = [whole[i:i + 37] for i in range(0, len(whole), 37)]
    p = parse_responses_stream(raw_of(pieces))
    assert p.text == "Let me Hi there" and len(p.content_ns) == 3 and p.usage_completion_tokens == 57


def test_rate_limited_response_is_not_parsed_as_a_stream():
    head = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\ncontent-length: 9"
    raw = RawStream(headers_ns=1, end_ns=2, status=429, header_bytes=head, recv_ns=[2], recv_bytes=[b'{"e":"x"}'])
    from backends.http1 import mark_http_error

    mark_http_error(raw)
    assert raw.error == ERR_HTTP_429 and "Retry-After: 7" in raw.error_detail
    for parse in (parse_openai_stream, parse_anthropic_stream, parse_responses_stream):
        p = parse(raw)
        assert p.error == ERR_HTTP_429 and not p.content_ns


def test_request_bodies_and_headers(monkeypatch):
    monkeypatch.setenv("K", "secret")
    req = RequestSpec(0, "hello there", 2, 16, True)
    ep = parse_url("https://api.example.com/")
    a = AnthropicCodec(ep, "claude-x", api_key_env="K").encode(req)
    head, body = a.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /v1/messages HTTP/1.1\r\nHost: api.example.com\r\n")
    assert b"x-api-key: secret" in head and b"anthropic-version: 2023-06-01" in head
    assert json.loads(body) == {"model": "claude-x", "max_tokens": 16, "stream": True,
                                "messages": [{"role": "user", "content": "hello there"}]}
    r = ResponsesCodec(ep, "gpt-x", api_key_env="K").encode(req)
    head, body = r.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /v1/responses HTTP/1.1") and b"Authorization: Bearer secret" in head
    assert json.loads(body) == {"model": "gpt-x", "input": "hello there", "max_output_tokens": 16, "stream": True}


COMPARED = ["n_content_chunks", "usage_prompt_tokens", "usage_completion_tokens", "output_chars", "error"]


@pytest.fixture(scope="module")
def mock():
    with MockProcess(["--ttft-ms", "2", "--itl-ms", "1", "--cached-tokens", "4"]) as m:
        yield m


PRICED = {"openai": ["--gpu-price", "2.5"], "anthropic": ["--hosted-price", "claude-haiku-4-5-20251001"],
          "responses": []}


def test_three_apis_through_the_mock_give_the_same_records(mock, tmp_path):
    tables, cached, runs = {}, {}, {}
    for backend in ("openai", "anthropic", "responses"):
        r = inferprof("sweep", "--url", mock.url, "--backend", backend, "--concurrency", "2", "--requests", "6",
                      "--output-tokens", "12", "--input-tokens", "10", "--no-telemetry", "--no-report",
                      "--out", str(tmp_path / backend), *PRICED[backend])
        assert r.returncode == 0, r.stderr
        runs[backend] = Path(r.stdout.strip().splitlines()[-1])
        req = pd.read_parquet(runs[backend] / "requests.parquet").sort_values("request")
        tables[backend] = req[COMPARED].reset_index(drop=True)
        cached[backend] = set(req["usage_cached_tokens"])
    assert (tables["openai"]["error"] == "").all() and (tables["openai"]["usage_completion_tokens"] == 12).all()
    assert cached == {"openai": {-1}, "anthropic": {4}, "responses": {4}}  # the mock's chat reports no cache
    pd.testing.assert_frame_equal(tables["anthropic"], tables["openai"])
    pd.testing.assert_frame_equal(tables["responses"], tables["openai"])
    _hosted_cost_is_the_list_price_of_the_tokens_used(runs["anthropic"])
    _compare_puts_hosted_and_self_hosted_cost_side_by_side(runs["anthropic"], runs["openai"], tmp_path)


def _hosted_cost_is_the_list_price_of_the_tokens_used(run: Path) -> None:
    """claude-haiku-4-5 lists $1 in, $0.1 cache read, $5 out per 1M; 4 of each 10 prompt tokens cached."""
    p = pd.read_csv(run / "points.csv").iloc[0]
    assert p["cached_prompt_frac"] == pytest.approx(0.4)
    want = (p["input_tokens"] * (0.6 * 1.0 + 0.4 * 0.1) + p["output_tokens"] * 5.0) / 1e6
    assert p["hosted_cost_usd"] == pytest.approx(want)
    assert p["usd_per_1m_output"] == pytest.approx(want / p["output_tokens"] * 1e6)
    assert p["api_usd_per_1m_input"] == pytest.approx(0.64) and p["api_usd_per_1m_output"] == 5.0
    assert pd.isna(p["gpu_cost_usd"])
    assert json.loads((run / "manifest.json").read_text())["pricing"]["kind"] == "hosted"


def _compare_puts_hosted_and_self_hosted_cost_side_by_side(hosted: Path, own: Path, tmp_path: Path) -> None:
    r = inferprof("compare", str(hosted), str(own), "--resamples", "100", "--out", str(tmp_path / "cmp"),
                  "--format", "csv")
    assert r.returncode == 0, r.stderr
    pareto = pd.read_csv(tmp_path / "cmp" / "pareto.csv").set_index("run")
    usd = pareto["usd_per_1m_output"]
    assert usd.notna().all() and usd[hosted.name] != usd[own.name]
    assert pareto["ttft_p99_ms"].notna().all()


def test_unknown_hosted_price_is_one_line(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--backend", "anthropic", "--hosted-price", "no-such-model-xyz",
                  "--requests", "2", "--no-telemetry", "--out", str(tmp_path))
    assert r.returncode == 2 and "--hosted-price" in r.stderr and "Traceback" not in r.stderr
