"""Triton codecs without a server: request bodies, generate_stream and gRPC response reading,
style detection, error classification. (The real-server tests are in test_triton_real.py.)"""

from __future__ import annotations

import json
import pickle
import time

import pytest

from backends.codec import Codec, OwnTransportCodec, PromptPayload
from backends.errors import BackendError
from backends.http1 import Endpoint
from backends.records import ERR_CONNECT, ERR_PROTOCOL, ERR_SERVER, RawStream
from backends.triton import TritonGRPCCodec, TritonHTTPCodec, make_codec, parse_generate_stream
from backends.triton.grpc_codec import parse_grpc_stream
from backends.triton.resolve import pick_style
from backends.triton.responses import short_error
from workloads.requests import RequestSpec

EP = Endpoint("127.0.0.1", 8000, "")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked"
REQ = RequestSpec(index=0, prompt="hello there world", input_tokens=3, max_tokens=4, input_exact=False)


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


def event(**obj) -> bytes:
    return chunk(b"data: " + json.dumps({"model_name": "m", "model_version": "1", **obj}).encode() + b"\n\n")


def raw_of(pieces: list[bytes], head: bytes = HEAD, end: bool = True) -> RawStream:
    if end:
        pieces = [*pieces, b"0\r\n\r\n"]
    times = [1000 + 10 * i for i in range(len(pieces))]
    return RawStream(send_ns=900, headers_ns=950, end_ns=times[-1], status=200, chunked=True,
                     header_bytes=head, recv_ns=times, recv_bytes=pieces)


def body_of(request: bytes) -> dict:
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v2/models/m/generate_stream HTTP/1.1")
    return json.loads(body)


def test_request_bodies_by_style():
    trt = body_of(TritonHTTPCodec(EP, "m", "trtllm").encode(REQ))
    assert trt == {"text_input": "hello there world", "max_tokens": 4, "stream": True}
    trt2 = body_of(TritonHTTPCodec(EP, "m", "trtllm", flags=("return_num_output_tokens",),
                                   min_tokens_input="min_tokens").encode(REQ))
    assert trt2["min_tokens"] == 4 and trt2["return_num_output_tokens"] is True
    vl = body_of(TritonHTTPCodec(EP, "m", "vllm", flags=("exclude_input_in_output", "return_num_input_tokens",
                                                         "return_num_output_tokens")).encode(REQ))
    assert isinstance(vl["sampling_parameters"], str)  # the vLLM backend takes a JSON *string*
    assert json.loads(vl["sampling_parameters"]) == {"max_tokens": 4, "ignore_eos": True}
    assert vl["stream"] is True and vl["exclude_input_in_output"] is True
    assert vl["return_num_input_tokens"] is True and vl["return_num_output_tokens"] is True
    assert "max_tokens" not in vl
    with pytest.raises(ValueError):
        TritonHTTPCodec(EP, "m", "tgi")


def test_codecs_pickle():
    for codec in (TritonHTTPCodec(EP, "m", "vllm", flags=("return_num_output_tokens",)),
                  TritonGRPCCodec(EP, "m", "trtllm", inputs=(("text_input", "BYTES"), ("max_tokens", "INT32")))):
        assert pickle.loads(pickle.dumps(codec)) == codec
    payload = TritonGRPCCodec(EP, "m").encode(REQ)
    assert pickle.loads(pickle.dumps(payload)) == payload  # it travels to the worker processes


def test_codecs_meet_the_codec_contract():
    http, grpc = TritonHTTPCodec(EP, "m", "vllm"), TritonGRPCCodec(EP, "m")
    assert isinstance(http, Codec) and not isinstance(http, OwnTransportCodec)
    assert isinstance(grpc, OwnTransportCodec)
    assert isinstance(http.encode(REQ), bytes)
    assert grpc.encode(REQ) == PromptPayload(prompt="hello there world", max_tokens=4)


def test_style_detection():
    assert pick_style("m", {"text_input": "BYTES", "sampling_parameters": "BYTES", "stream": "BOOL"}) == "vllm"
    assert pick_style("m", {"text_input": "BYTES", "max_tokens": "INT32"}) == "trtllm"
    # a model with both (like the mock): the vLLM backend's JSON parameters win
    assert pick_style("m", {"text_input": "BYTES", "max_tokens": "INT32", "sampling_parameters": "BYTES"}) == "vllm"
    assert pick_style("m", {"text_input": "BYTES", "sampling_parameters": "BYTES"}, "trtllm") == "trtllm"
    with pytest.raises(BackendError, match="no text_input"):
        pick_style("m", {"input_ids": "INT32"})
    with pytest.raises(BackendError, match="neither sampling_parameters"):
        pick_style("m", {"text_input": "BYTES"})


def test_make_codec_from_resolved_target():
    class T:
        extra_manifest = {"triton": {"protocol": "grpc", "model": "m", "style": "vllm", "flags": ["return_num_output_tokens"],
                                     "min_tokens_input": "", "inputs": {"text_input": "BYTES"}}}

    codec = make_codec(EP, T())
    assert isinstance(codec, TritonGRPCCodec) and codec.style == "vllm" and hasattr(codec, "connection")
    T.extra_manifest["triton"]["protocol"] = "http"
    codec = make_codec(EP, T())
    assert isinstance(codec, TritonHTTPCodec) and not hasattr(codec, "connection")


def test_generate_stream_counts_and_timing():
    raw = raw_of([event(text_output="a ", num_output_tokens=1, num_input_tokens=7),
                  event(text_output="b ", num_output_tokens=1, num_input_tokens=7)
                  + event(text_output="c d ", num_output_tokens=2, num_input_tokens=7)])
    p = parse_generate_stream(raw)
    assert not p.error
    assert p.text == "a b c d "
    assert p.usage_completion_tokens == 4 and p.usage_prompt_tokens == 7  # deltas summed, input repeated
    assert p.content_tokens == [1, 1, 2]
    assert p.content_ns == [1000, 1010, 1010] and p.bursts == 1


def test_generate_stream_without_counts_and_held_back_tokens():
    p = parse_generate_stream(raw_of([event(text_output="x"), event(text_output="y")]))
    assert not p.error and p.usage_completion_tokens is None and p.usage_prompt_tokens is None
    assert p.content_tokens == [-1, -1]
    # an empty-text response that still produced a token: its count goes to the next content event
    p = parse_generate_stream(raw_of([event(text_output="a", num_output_tokens=1),
                                      event(text_output="", num_output_tokens=1),
                                      event(text_output="bc", num_output_tokens=1)]))
    assert p.content_tokens == [1, 2] and p.usage_completion_tokens == 3 and len(p.event_ns) == 3


def test_generate_stream_error_event_under_200_keeps_what_came_before():
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom after 2\n"
    p = parse_generate_stream(raw_of([event(text_output="a", num_output_tokens=1),
                                      event(text_output="b", num_output_tokens=1),
                                      chunk(b"data: " + json.dumps({"error": tb}).encode() + b"\n\n")]))
    assert p.error == ERR_SERVER and p.error_detail == "RuntimeError: boom after 2"
    assert p.text == "ab" and p.usage_completion_tokens == 2 and len(p.content_ns) == 2


def test_generate_stream_protocol_errors():
    p = parse_generate_stream(raw_of([event(text_output="a")], end=False))
    assert p.error == ERR_PROTOCOL and "final chunk" in p.error_detail
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    p = parse_generate_stream(raw_of([chunk(b'{"text_output":"a"}')], head=head))
    assert p.error == ERR_PROTOCOL and "not a stream" in p.error_detail
    p = parse_generate_stream(raw_of([]))  # max_tokens 0 / nothing generated
    assert p.error == ERR_PROTOCOL


def test_http_error_detail_is_tritons_message():
    raw = RawStream(send_ns=1, headers_ns=2, end_ns=3, status=400, error="http_4xx", error_detail="HTTP 400: ...",
                    recv_ns=[3], recv_bytes=[b'{"error":"Request for unknown model: \'x\' is not found"}'])
    p = parse_generate_stream(raw)
    assert p.error == "http_4xx" and p.error_detail == "HTTP 400: Request for unknown model: 'x' is not found"


def test_short_error():
    assert short_error("Traceback (most recent call last):\n  a\nValueError: bad\n") == "ValueError: bad"
    assert short_error("first\nsecond") == "first"
    assert short_error("") == "server error"


# ---------------------------------------------------------------- gRPC responses


def _bytes_tensor(s: bytes) -> bytes:
    return len(s).to_bytes(4, "little") + s


def _response(rid: str, text: bytes | None = None, n_out: int | None = None, n_in: int | None = None,
              final: bool = False):
    import numpy as np
    from tritonclient.grpc import service_pb2

    r = service_pb2.ModelInferResponse(model_name="m", id=rid)
    if text is not None:
        o = r.outputs.add(name="text_output", datatype="BYTES", shape=[1])
        r.raw_output_contents.append(_bytes_tensor(text))
        del o
    if n_out is not None:
        r.outputs.add(name="num_output_tokens", datatype="UINT32", shape=[1])
        r.raw_output_contents.append(np.array([n_out], np.uint32).tobytes())
    if n_in is not None:
        r.outputs.add(name="num_input_tokens", datatype="INT32", shape=[1])
        r.raw_output_contents.append(np.array([n_in], np.int32).tobytes())
    r.parameters["triton_final_response"].bool_param = final
    return r


def test_grpc_parse_messages_and_serialized():
    msgs = [_response("r1", b"a ", 1, 5), _response("r1", "\u00e9 ".encode(), 1, 5), _response("r1", final=True)]
    for items in (msgs, [m.SerializeToString() for m in msgs]):
        raw = RawStream(send_ns=1, headers_ns=10, end_ns=30, status=200, recv_ns=[10, 20, 30], recv_bytes=list(items))
        p = parse_grpc_stream(raw)
        assert not p.error
        assert p.text == "a \u00e9 " and p.content_ns == [10, 20] and p.event_ns == [10, 20]
        assert p.content_tokens == [1, 1] and p.usage_completion_tokens == 2 and p.usage_prompt_tokens == 5
        assert p.response_id == "r1" and p.bursts == 0


def test_grpc_parse_without_counts_and_with_error():
    raw = RawStream(send_ns=1, headers_ns=10, end_ns=40, status=200, error=ERR_SERVER, error_detail="boom",
                    recv_ns=[10, 20], recv_bytes=[_response("r", b"x"), _response("r", b"y")])
    p = parse_grpc_stream(raw)
    assert p.error == ERR_SERVER and p.text == "xy" and p.content_tokens == [-1, -1]
    assert p.usage_completion_tokens is None


def test_grpc_request_tensors_follow_the_model_inputs():
    trt = TritonGRPCCodec(EP, "m", "trtllm", inputs=(("text_input", "BYTES"), ("max_tokens", "INT32"),
                                                     ("stream", "BOOL")))
    names = {t.name(): t.datatype() for t in trt.build_inputs(PromptPayload("hi", 8))}
    assert names == {"text_input": "BYTES", "max_tokens": "INT32", "stream": "BOOL"}
    vl = TritonGRPCCodec(EP, "m", "vllm", flags=("exclude_input_in_output", "return_num_output_tokens"),
                         inputs=(("text_input", "BYTES"), ("sampling_parameters", "BYTES"), ("stream", "BOOL"),
                                 ("exclude_input_in_output", "BOOL"), ("return_num_output_tokens", "BOOL")))
    names = {t.name() for t in vl.build_inputs(PromptPayload("hi", 8))}
    assert names == {"text_input", "sampling_parameters", "stream", "exclude_input_in_output",
                     "return_num_output_tokens"}


def test_grpc_connection_refused_is_a_connect_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    codec = TritonGRPCCodec(Endpoint("127.0.0.1", port, ""), "m", inputs=(("text_input", "BYTES"),))
    conn = codec.connection(5.0)
    raw = RawStream()
    try:
        t0 = time.perf_counter_ns()
        conn.stream(codec.encode(REQ), raw, t0 + 10_000_000_000)
    finally:
        conn.close()
    assert raw.error == ERR_CONNECT and raw.status == 0 and raw.send_ns >= t0
    assert parse_grpc_stream(raw).error == ERR_CONNECT
