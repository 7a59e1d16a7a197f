"""The shared stream parser and the OpenAI reading of it, on golden byte fixtures."""

from __future__ import annotations

import json

from backends.codec import Codec
from backends.http1 import Endpoint
from backends.openai import OpenAICodec, parse_openai_stream
from backends.records import RawStream
from backends.sse import dechunk, iter_events
from workloads.requests import RequestSpec

HEAD_SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked"


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


def chat_event(content=None, role=None, usage=None, finish=None, choices=True, rid="chatcmpl-1") -> bytes:
    obj = {"id": rid, "object": "chat.completion.chunk", "model": "m"}
    if choices:
        delta = {}
        if role is not None:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    else:
        obj["choices"] = []
    if usage:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def raw_of(pieces: list[bytes], times: list[int], chunked=True, head=HEAD_SSE) -> RawStream:
    return RawStream(send_ns=1000, headers_ns=times[0], end_ns=times[-1], status=200, chunked=chunked,
                     header_bytes=head, recv_ns=list(times), recv_bytes=list(pieces))


def test_dechunk_keeps_provenance_across_split_reads():
    body = chunk(b"data: a\n\n") + chunk(b"data: bb\n\n") + b"0\r\n\r\n"
    # split in awkward places: inside a size line, inside a payload, inside the terminator
    pieces = [body[:2], body[2:9], body[9:20], body[20:]]
    out = dechunk(pieces, chunked=True)
    assert out.complete and not out.error
    assert out.data == b"data: a\n\ndata: bb\n\n"
    events, _ = iter_events([10, 20, 30, 40], pieces, chunked=True)
    assert [e.data for e in events] == [b"a", b"bb"]
    # each event is stamped with the read that delivered its terminating blank line
    first_end = body.index(b"a\n\n") + 2
    expected_first = next(i for i, end in enumerate([2, 9, 20, len(body)]) if first_end < end)
    assert events[0].t_ns == [10, 20, 30, 40][expected_first]
    assert events[1].t_ns == 40


def test_sse_comments_multiline_crlf_and_unterminated_tail():
    payload = (b": keep-alive\r\n\r\n"
               b"event: message\r\ndata: line1\r\ndata: line2\r\n\r\n"
               b"data:no-space\r\r"
               b"data: cut")
    events, _ = iter_events([5], [payload], chunked=False)
    assert [(e.data, e.event) for e in events] == [(b"line1\nline2", b"message"), (b"no-space", b"")]


def test_multi_token_chunks_role_only_first_and_usage_only_last():
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    events = [
        chat_event(role="assistant", content=""),  # role-only prelude: not TTFT
        chat_event(content=" a b"),  # two tokens in one chunk
        chat_event(content=""),  # empty delta
        chat_event(content=" c"),
        chat_event(content=" d e", finish="length"),
        chat_event(choices=False, usage=usage),
        b"data: [DONE]\n\n",
    ]
    pieces = [chunk(e) for e in events]
    pieces[-1] += b"0\r\n\r\n"
    times = [100, 200, 300, 400, 500, 600, 700]
    p = parse_openai_stream(raw_of(pieces, times))
    assert not p.error
    assert p.content_ns == [200, 400, 500]
    assert p.event_ns[0] == 100
    assert p.text == " a b c d e"
    assert p.usage_completion_tokens == 5 and p.usage_prompt_tokens == 7
    assert p.finish_reason == "length"
    assert p.response_id == "chatcmpl-1"
    assert p.bursts == 0


def test_burst_counts_reads_that_carry_several_content_events():
    events = [chat_event(content=f" t{i}") for i in range(4)] + [b"data: [DONE]\n\n"]
    body = b"".join(chunk(e) for e in events) + b"0\r\n\r\n"
    # first three content events arrive in one read, the fourth alone
    cut = body.index(chunk(events[3]))
    p = parse_openai_stream(raw_of([body[:cut], body[cut:]], [10, 20]))
    assert p.content_ns == [10, 10, 10, 20]
    assert p.bursts == 1


def test_completions_text_and_continuous_usage_gives_tokens_per_chunk():
    def ev(text, ct):
        obj = {"id": "cmpl-9", "choices": [{"index": 0, "text": text, "finish_reason": None}],
               "usage": {"prompt_tokens": 3, "completion_tokens": ct}}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    body = ev(" x", 1) + ev(" y z", 3) + ev(" w", 4) + b"data: [DONE]\n\n"
    p = parse_openai_stream(raw_of([body], [50], chunked=False,
                                   head=b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"))
    assert p.content_tokens == [1, 2, 1]
    assert p.usage_completion_tokens == 4


def test_one_token_output():
    body = chunk(chat_event(content="hi", finish="length")) + chunk(
        chat_event(choices=False, usage={"prompt_tokens": 1, "completion_tokens": 1})) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    p = parse_openai_stream(raw_of([body], [42]))
    assert p.content_ns == [42] and p.usage_completion_tokens == 1 and not p.error


def test_not_a_stream_and_error_event_and_missing_final_chunk():
    p = parse_openai_stream(raw_of([b'{"id":"x"}'], [1], chunked=False,
                                   head=b"HTTP/1.1 200 OK\r\nContent-Type: application/json"))
    assert p.error == "protocol" and "does not stream" in p.error_detail

    body = chunk(b'data: {"error": {"message": "boom"}}\n\n') + b"0\r\n\r\n"
    p = parse_openai_stream(raw_of([body], [1]))
    assert p.error == "server_error" and "boom" in p.error_detail

    body = chunk(chat_event(content="a"))  # connection cut: no terminating chunk
    p = parse_openai_stream(raw_of([body], [1]))
    assert p.error == "protocol"


def test_openai_request_golden_bytes(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sekret")
    codec = OpenAICodec(Endpoint("10.0.0.1", 8000, "/proxy"), "m", api="completions", api_key_env="TEST_KEY",
                        temperature=0.5, continuous_usage=True, ignore_eos=False)
    assert isinstance(codec, Codec)
    body = (b'{"model":"m","max_tokens":16,"stream":true,"stream_options":{"include_usage":true,'
            b'"continuous_usage_stats":true},"temperature":0.5,"prompt":"hello \\u00e9 world"}')
    assert codec.encode(RequestSpec(0, "hello \u00e9 world", 3, 16, True)) == (
        b"POST /proxy/v1/completions HTTP/1.1\r\nHost: 10.0.0.1:8000\r\nContent-Type: application/json\r\n"
        b"Accept: text/event-stream\r\nAuthorization: Bearer sekret\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    chat = OpenAICodec(Endpoint("h", 80, ""), "m").encode(RequestSpec(0, "hi", 1, 2, True))
    assert chat.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h:80\r\n")
    assert b"Authorization" not in chat and chat.endswith(b'"ignore_eos":true,"messages":[{"role":"user","content":"hi"}]}')
