"""NVIDIA Triton Inference Server: generate_stream over HTTP (SSE) and KServe v2 gRPC streaming.

`resolve(target, protocol)` checks the server and model before a sweep and records what it found
in `target.extra_manifest["triton"]`; `make_codec(endpoint, target)` builds the codec from that.
Triton's OpenAI-compatible frontend needs none of this: it is served by backends.openai.
"""

from __future__ import annotations

from backends.codec import Codec
from backends.http1 import Endpoint
from backends.triton.grpc_codec import TritonGRPCCodec
from backends.triton.http_codec import TritonHTTPCodec, parse_generate_stream
from backends.triton.resolve import ModelInfo, resolve

__all__ = ["TritonGRPCCodec", "TritonHTTPCodec", "ModelInfo", "make_codec", "parse_generate_stream", "resolve"]


def make_codec(endpoint: Endpoint, target, protocol: str = "http") -> Codec:
    """The codec for a resolved target (resolve() is run here when the caller did not)."""
    info = target.extra_manifest.get("triton")
    if not info or "style" not in info:
        resolve(target, protocol)
        info = target.extra_manifest["triton"]
    common = dict(model=info["model"], style=info["style"], flags=tuple(info["flags"]),
                  min_tokens_input=info["min_tokens_input"])
    if info["protocol"] == "grpc":
        return TritonGRPCCodec(endpoint, inputs=tuple(info["inputs"].items()), **common)
    return TritonHTTPCodec(endpoint, **common)
