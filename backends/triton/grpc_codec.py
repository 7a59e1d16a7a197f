"""Triton over gRPC: KServe v2 bidirectional streaming (`ModelStreamInfer`) for decoupled models.

Each load-generator thread owns one `GRPCStreamConnection`: one `tritonclient.grpc` client and one
open stream, reused by its requests one at a time. Requests ask for
`enable_empty_final_response`, so the end of a request is the empty response flagged
`triton_final_response` (without it nothing marks the end of a decoupled stream).

Hot path: tritonclient's response thread calls our callback per response; the callback takes
`perf_counter_ns()` first, keeps the response message and signals the end. Decoding waits for
`parse()`, after the point. What a RawStream holds here:
  recv_ns[i]    arrival of response i (the callback's timestamp), including the final empty one
  recv_bytes[i] response i as a `ModelInferResponse` message (serialized bytes are accepted too)
  headers_ns    arrival of the first response; status 200 when the RPC itself went through.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from backends.codec import PromptPayload
from backends.records import (
    ERR_CANCELLED,
    ERR_CLOSED,
    ERR_CONNECT,
    ERR_PROTOCOL,
    ERR_SERVER,
    ERR_TIMEOUT,
    ParsedStream,
    RawStream,
)
from backends.triton.http_codec import TritonCodecBase
from backends.triton.responses import Accumulator, short_error
from workloads.requests import RequestSpec

FINAL = "triton_final_response"
_REQUEST_IDS = itertools.count(1)  # next() is atomic under the GIL: ids unique per process
_NP = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
       "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
       "FP32": np.float32, "FP64": np.float64}


def grpc_target(url: str) -> str:
    """host:port from `host:port`, `http://host:port` or `grpc://host:port`."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


@dataclass(frozen=True)
class TritonGRPCCodec(TritonCodecBase):
    """`endpoint` is the host and port of the gRPC server."""

    inputs: tuple[tuple[str, str], ...] = ()  # (name, datatype) the model declares

    @property
    def target(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def encode(self, req: RequestSpec) -> PromptPayload:
        # The tensors are built from it by the stream thread, before send_ns is taken.
        return PromptPayload(req.prompt, req.max_tokens)

    def connection(self, read_timeout_s: float) -> GRPCStreamConnection:
        return GRPCStreamConnection(self, read_timeout_s)

    def build_inputs(self, payload: PromptPayload) -> list:
        import tritonclient.grpc as grpcclient

        prompt, max_tokens = payload.prompt, payload.max_tokens
        dtypes = dict(self.inputs)
        values: list[tuple[str, object]] = [("text_input", prompt.encode())]
        if self.style == "vllm":
            import json

            sampling = json.dumps({"max_tokens": max_tokens, "ignore_eos": True}, separators=(",", ":"))
            values.append(("sampling_parameters", sampling.encode()))
        else:
            values.append(("max_tokens", max_tokens))
            if self.min_tokens_input:
                values.append((self.min_tokens_input, max_tokens))
        values.append(("stream", True))
        values.extend((name, True) for name in self.flags)
        out = []
        for name, value in values:
            dtype = dtypes.get(name, "BYTES" if isinstance(value, bytes) else "BOOL" if value is True else "INT32")
            if dtypes and name not in dtypes:
                continue  # gRPC rejects inputs the model does not declare
            t = grpcclient.InferInput(name, [1], dtype)
            arr = np.array([value], dtype=np.object_ if dtype == "BYTES" else _NP.get(dtype, np.int32))
            t.set_data_from_numpy(arr)
            out.append(t)
        return out

    def parse(self, raw: RawStream) -> ParsedStream:
        return parse_grpc_stream(raw)


class GRPCStreamConnection:
    """One tritonclient gRPC client + stream; `stream()` fills a RawStream like the HTTP reader."""

    def __init__(self, codec: TritonGRPCCodec, read_timeout: float, connect_timeout: float = 10.0):
        self.codec = codec
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.client = None
        self._sink: tuple[str, list[int], list, threading.Event] | None = None

    def _on_response(self, result=None, error=None) -> None:
        # Runs on tritonclient's response thread: timestamp first, keep the message, no decoding.
        t = time.perf_counter_ns()
        sink = self._sink
        if sink is None:
            return  # a late response of a request that already ended (timed out)
        if result is not None:
            resp = result.get_response()
            if resp.id != sink[0]:
                return
            sink[1].append(t)
            sink[2].append(resp)
            params = resp.parameters
            if FINAL in params and params[FINAL].bool_param:
                sink[3].set()
        else:
            sink[1].append(t)
            sink[2].append(error)
            sink[3].set()

    def open(self) -> None:
        """Create the client and its stream and check the server answers; errors surface in stream()."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        if self.client is not None:
            return
        try:
            client = grpcclient.InferenceServerClient(self.codec.target)
        except InferenceServerException as e:
            raise ConnectionError(short_error(e.message())) from None
        try:
            # Connect now (channels connect lazily) so the first request does not pay for it.
            client.is_server_live(client_timeout=self.connect_timeout)
            client.start_stream(callback=self._on_response)
        except InferenceServerException as e:
            client.close()
            raise ConnectionError(short_error(e.message())) from None
        self.client = client

    def close(self) -> None:
        client, self.client = self.client, None
        self._sink = None
        if client is not None:
            try:
                client.stop_stream(cancel_requests=True)
                client.close()
            except Exception:  # closing a broken channel must not take the thread down
                pass

    def stream(self, payload: PromptPayload, raw: RawStream, deadline_ns: int) -> None:
        """Send one request on the stream and record its responses. Never raises for network faults."""
        from tritonclient.utils import InferenceServerException

        perf = time.perf_counter_ns
        try:
            self.open()
        except OSError as e:
            raw.send_ns = raw.end_ns = perf()
            raw.error, raw.error_detail = ERR_CONNECT, str(e)
            return
        inputs = self.codec.build_inputs(payload)
        # The id routes responses to this request (and shows in server logs and traces).
        rid = f"inferprof-{os.getpid()}-{next(_REQUEST_IDS)}"
        done = threading.Event()
        times: list[int] = raw.recv_ns
        items: list = raw.recv_bytes
        self._sink = (rid, times, items, done)
        try:
            raw.send_ns = perf()
            self.client.async_stream_infer(self.codec.model, inputs, request_id=rid,
                                           enable_empty_final_response=True)
        except InferenceServerException as e:  # the stream broke before (server gone): reopen next time
            raw.end_ns = perf()
            raw.error, raw.error_detail = ERR_CONNECT, short_error(e.message())
            self.close()
            return
        timed_out = self._wait(done, times, raw.send_ns, deadline_ns)
        self._sink = None
        if timed_out:
            raw.end_ns = perf()
            raw.error, raw.error_detail = ERR_TIMEOUT, timed_out
            if times:
                raw.headers_ns, raw.status = times[0], 200
            self.close()  # the request may still be running: a fresh stream keeps the next one clean
            return
        end = items[-1]
        if isinstance(end, Exception):
            times_end = times.pop()
            items.pop()
            self._fail(raw, end, times_end)
        else:
            raw.status = 200
            raw.end_ns = times[-1]
        if times:
            raw.headers_ns = times[0]

    def _wait(self, done: threading.Event, times: list[int], send_ns: int, deadline_ns: int) -> str:
        """Wait for the final response; '' when it came, else why we stopped waiting. Bounded."""
        read_ns = int(self.read_timeout * 1e9)
        while True:
            now = time.perf_counter_ns()
            last = times[-1] if times else send_ns
            until = min(deadline_ns, last + read_ns)
            if done.wait(max(0.0, (until - now) / 1e9) + 0.001):
                return ""
            now = time.perf_counter_ns()
            if now >= deadline_ns:
                return "request deadline passed"
            last = times[-1] if times else send_ns
            if now - last >= read_ns:
                return f"no response for {self.read_timeout:g} s"

    def _fail(self, raw: RawStream, error, t_ns: int) -> None:
        raw.end_ns = t_ns
        status = error.status() if hasattr(error, "status") else None
        detail = short_error(error.message() if hasattr(error, "message") else error)
        if status is None:  # the server answered this request with an error; the stream lives on
            raw.status = 200
            raw.error, raw.error_detail = ERR_SERVER, detail
            return
        code = str(status).rsplit(".", 1)[-1]
        if code == "UNAVAILABLE":
            raw.error = ERR_CLOSED if raw.recv_ns else ERR_CONNECT
        elif code == "DEADLINE_EXCEEDED":
            raw.error = ERR_TIMEOUT
        elif code == "CANCELLED":
            raw.error = ERR_CANCELLED
        elif code == "UNIMPLEMENTED":
            raw.error = ERR_PROTOCOL
        else:
            raw.error = ERR_SERVER
        raw.error_detail = f"gRPC {code}: {detail}"
        self.close()  # tritonclient's stream is dead after an RPC error


def _decode(resp) -> dict[str, object]:
    """Output tensors of one ModelInferResponse: first element of each ([1]-shaped LLM outputs)."""
    out: dict[str, object] = {}
    raws = resp.raw_output_contents
    for i, o in enumerate(resp.outputs):
        if i < len(raws):
            buf = raws[i]
            if o.datatype == "BYTES":
                parts = []
                pos = 0
                while pos + 4 <= len(buf):  # 4-byte little-endian length, then the bytes
                    (n,) = struct.unpack_from("<I", buf, pos)
                    parts.append(buf[pos + 4: pos + 4 + n])
                    pos += 4 + n
                out[o.name] = b"".join(parts)
            elif o.datatype in _NP and buf:
                out[o.name] = np.frombuffer(buf, dtype=_NP[o.datatype]).reshape(-1)[0].item()
        else:  # typed contents (not what Triton sends, but legal in the protocol)
            c = o.contents
            vals = (list(c.bytes_contents) or list(c.int_contents) or list(c.uint_contents)
                    or list(c.int64_contents) or list(c.uint64_contents))
            if vals:
                out[o.name] = b"".join(vals) if o.datatype == "BYTES" else int(vals[0])
    return out


def parse_grpc_stream(raw: RawStream) -> ParsedStream:
    """Read the responses a GRPCStreamConnection recorded."""
    out = ParsedStream(error=raw.error, error_detail=raw.error_detail)
    if not raw.recv_ns:
        return out
    try:
        from tritonclient.grpc import service_pb2
    except ImportError:  # parse happens in the worker that recorded: tritonclient is there
        service_pb2 = None
    acc = Accumulator(out)
    for i, (t, item) in enumerate(zip(raw.recv_ns, raw.recv_bytes, strict=False)):
        resp = item
        if isinstance(item, bytes | bytearray):
            if service_pb2 is None:
                out.error, out.error_detail = ERR_PROTOCOL, "tritonclient is needed to read gRPC responses"
                return out
            resp = service_pb2.ModelInferResponse.FromString(bytes(item))
        if not out.response_id and resp.id:
            out.response_id = resp.id
        if not resp.outputs:
            continue  # the empty final response: an end marker, not an event
        v = _decode(resp)
        text = v.get("text_output", b"")
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        n_out = v.get("num_output_tokens")
        n_in = v.get("num_input_tokens")
        reason = v.get("finish_reason", b"")
        acc.response(t, i, text, n_out if isinstance(n_out, int) else None,
                     n_in if isinstance(n_in, int) else None,
                     reason.decode("utf-8", "replace") if isinstance(reason, bytes) else "")
    acc.finish()
    if not out.error and not out.content_ns:
        out.error, out.error_detail = ERR_PROTOCOL, "stream carried no generated content"
    return out
