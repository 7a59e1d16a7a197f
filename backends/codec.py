"""The codec contract: what a backend gives the load generator.

A codec turns each `RequestSpec` into a payload before the point starts (`encode`) and reads the
recorded `RawStream` after the request ended (`parse`); nothing of it runs while bytes arrive.
Between the two a transport carries the payload and fills the RawStream:

- an HTTP codec (`backends.openai.OpenAICodec`, `backends.triton.TritonHTTPCodec`) encodes a whole
  HTTP/1.1 request as `bytes`, sent by the load generator's transports (backends/http_mux.py,
  backends/http_stream.py);
- a codec that brings its own transport (`backends.triton.TritonGRPCCodec`) encodes a
  `PromptPayload` and opens its transport with `connection(read_timeout_s)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from backends.http1 import Endpoint
from backends.records import ParsedStream, RawStream
from workloads.requests import RequestSpec


@dataclass(frozen=True, slots=True)
class PromptPayload:
    """A request whose wire form its transport builds (gRPC tensors, made on the stream thread
    before the send time is taken): only what varies from request to request."""

    prompt: str
    max_tokens: int


Payload: TypeAlias = bytes | PromptPayload  # bytes: a whole HTTP/1.1 request, ready to send


class Transport(Protocol):
    """One connection of a stream: sends payloads one at a time and records each response."""

    def open(self) -> object:
        """Connect ahead of the first request (raises OSError when that fails)."""
        ...

    def stream(self, payload: Payload, raw: RawStream, deadline_ns: int) -> None:
        """Send `payload` and record its response into `raw`; never raises for network faults."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Codec(Protocol):
    @property
    def endpoint(self) -> Endpoint: ...

    def encode(self, req: RequestSpec) -> Payload:
        """The request as its transport sends it; called before the point starts."""
        ...

    def parse(self, raw: RawStream) -> ParsedStream:
        """Read a recorded response; called after the request ended."""
        ...


@runtime_checkable
class OwnTransportCodec(Codec, Protocol):
    """A codec whose payloads travel on its own transport (not HTTP/1.1)."""

    def connection(self, read_timeout_s: float) -> Transport: ...
