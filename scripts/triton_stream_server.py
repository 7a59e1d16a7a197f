#!/usr/bin/env python3
"""Decoupled fake LLMs served by a REAL Triton Inference Server (2.51, via PyTriton 0.7.0) on CPU.

Runs in the venv made by `scripts/triton_cpu.sh setup` (never the project's environment):

    python scripts/triton_stream_server.py --http 8021 --grpc 8022 --metrics 8023

Models (all decoupled: one response per generated token, then PyTriton's empty final response):
  fake_llm     TensorRT-LLM ensemble style.
               inputs : text_input BYTES[1], max_tokens INT32[1], stream BOOL[1] (optional)
               outputs: text_output BYTES[1], num_output_tokens INT32[1]
  vllm_like    Triton vLLM backend style.
               inputs : text_input BYTES[1], stream, exclude_input_in_output, return_num_input_tokens,
                        return_num_output_tokens (BOOL[1], optional), sampling_parameters BYTES[1]
                        (optional JSON string, e.g. {"max_tokens": 16, "ignore_eos": true})
               outputs: text_output BYTES[1], num_input_tokens UINT32[1], num_output_tokens UINT32[1]
                        (the counts on every response, only when asked for, as the vLLM backend does;
                        num_output_tokens is the per-response delta)
  failing_llm  fake_llm's contract, but raises after FAIL_AFTER (3) responses: the error arrives as
               an `error` event under HTTP 200 (generate_stream) or an error response (gRPC).

Schedule: TTFT_MS (20) before the first response, ITL_MS (5) between responses (env or flags).
Prompt "tokens" are whitespace-separated words; generated tokens are words, one per response.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import sysconfig
from pathlib import Path

# tritonserver's python-backend stub must load THIS interpreter's libpython; a system libpython
# crashes model load ("'_thread.RLock' object has no attribute '_recursion_count'"). PyTriton
# copies os.environ into tritonserver, so setting it before Triton() starts is enough.
_libdir = sysconfig.get_config_var("LIBDIR")
if _libdir:
    _cur = os.environ.get("LD_LIBRARY_PATH", "")
    if _libdir not in _cur.split(":"):
        os.environ["LD_LIBRARY_PATH"] = _libdir + (":" + _cur if _cur else "")

# PyTriton's workspace (sockets, model store, a copy of tritonserver) defaults to ~/.cache/pytriton
# and is left behind after abnormal exits; keep it per server (must be set before the import).
os.environ.setdefault("PYTRITON_HOME", str(Path.home() / ".cache" / "inferprof" / "triton" / "pytriton-home"))

import numpy as np  # noqa: E402
from pytriton.model_config import ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig  # noqa: E402

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


class Schedule:
    ttft_s: float = float(os.environ.get("TTFT_MS", "20")) / 1000.0
    itl_s: float = float(os.environ.get("ITL_MS", "5")) / 1000.0
    fail_after: int = int(os.environ.get("FAIL_AFTER", "3"))


def _scalar(req, name: str, default=None):
    if name not in req:
        return default
    v = np.asarray(req[name]).reshape(-1)
    return v[0] if v.size else default


def _text(req) -> str:
    t = _scalar(req, "text_input", b"")
    return t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)


def _word(i: int) -> bytes:
    return (WORDS[i % len(WORDS)] + " ").encode()


async def _tokens(n: int):
    """Yield token indices on the schedule; `await` so concurrent streams interleave (a sync
    generator would run on PyTriton's single event loop and serialise every stream)."""
    await asyncio.sleep(Schedule.ttft_s)
    for i in range(n):
        if i:
            await asyncio.sleep(Schedule.itl_s)
        yield i


# With batching=False every execute() carries exactly one request, so streams end independently.
async def infer_trtllm(requests):
    n = max(int(_scalar(requests[0], "max_tokens", 16)), 0)
    async for i in _tokens(n):
        yield [{"text_output": np.array([_word(i)], dtype=np.object_),
                "num_output_tokens": np.array([1], dtype=np.int32)}]


async def infer_failing(requests):
    n = max(int(_scalar(requests[0], "max_tokens", 16)), 0)
    async for i in _tokens(n):
        if i >= Schedule.fail_after:
            raise RuntimeError(f"fake failure after {i} responses")
        yield [{"text_output": np.array([_word(i)], dtype=np.object_),
                "num_output_tokens": np.array([1], dtype=np.int32)}]


async def infer_vllm(requests):
    req = requests[0]
    raw = _scalar(req, "sampling_parameters", b"{}")
    try:
        params = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw) or "{}")
    except ValueError as e:
        raise ValueError(f"sampling_parameters is not JSON: {e}") from None
    n = max(int(params.get("max_tokens", 16)), 0)
    want_in = bool(_scalar(req, "return_num_input_tokens", False))
    want_out = bool(_scalar(req, "return_num_output_tokens", False))
    prompt_tokens = len(_text(req).split())
    async for i in _tokens(n):
        out = {"text_output": np.array([_word(i)], dtype=np.object_)}
        if want_in:
            out["num_input_tokens"] = np.array([prompt_tokens], dtype=np.uint32)
        if want_out:
            out["num_output_tokens"] = np.array([1], dtype=np.uint32)
        yield [out]


def _bool(name: str) -> Tensor:
    return Tensor(name=name, dtype=np.bool_, shape=(1,), optional=True)


def bind_models(triton: Triton) -> None:
    trt_inputs = [Tensor(name="text_input", dtype=np.bytes_, shape=(1,)),
                  Tensor(name="max_tokens", dtype=np.int32, shape=(1,)), _bool("stream")]
    trt_outputs = [Tensor(name="text_output", dtype=np.bytes_, shape=(1,)),
                   Tensor(name="num_output_tokens", dtype=np.int32, shape=(1,))]
    cfg = ModelConfig(batching=False, decoupled=True)
    triton.bind(model_name="fake_llm", infer_func=infer_trtllm, inputs=trt_inputs, outputs=trt_outputs,
                config=cfg, strict=True)
    triton.bind(model_name="failing_llm", infer_func=infer_failing, inputs=trt_inputs, outputs=trt_outputs,
                config=cfg, strict=True)
    triton.bind(
        model_name="vllm_like", infer_func=infer_vllm,
        inputs=[Tensor(name="text_input", dtype=np.bytes_, shape=(1,)), _bool("stream"),
                Tensor(name="sampling_parameters", dtype=np.bytes_, shape=(1,), optional=True),
                _bool("exclude_input_in_output"), _bool("return_num_input_tokens"),
                _bool("return_num_output_tokens")],
        outputs=[Tensor(name="text_output", dtype=np.bytes_, shape=(1,)),
                 Tensor(name="num_input_tokens", dtype=np.uint32, shape=(1,)),
                 Tensor(name="num_output_tokens", dtype=np.uint32, shape=(1,))],
        config=cfg, strict=True)


def _terminate(*_):
    raise KeyboardInterrupt  # the same clean path as Ctrl-C: PyTriton removes its workspace


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http", type=int, default=8021)
    ap.add_argument("--grpc", type=int, default=8022)
    ap.add_argument("--metrics", type=int, default=8023)
    ap.add_argument("--ttft-ms", type=float, default=None, help="default: env TTFT_MS or 20")
    ap.add_argument("--itl-ms", type=float, default=None, help="default: env ITL_MS or 5")
    ap.add_argument("--fail-after", type=int, default=None, help="failing_llm: responses before the error (3)")
    ap.add_argument("--restrict-repository", action="store_true",
                    help="keep PyTriton's default token restriction of the model-repository and statistics APIs "
                         "(tritonserver itself leaves them open; clients then cannot list the models)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.ttft_ms is not None:
        Schedule.ttft_s = a.ttft_ms / 1000.0
    if a.itl_ms is not None:
        Schedule.itl_s = a.itl_ms / 1000.0
    if a.fail_after is not None:
        Schedule.fail_after = a.fail_after
    # `cmd &` from a non-interactive shell inherits SIGINT=ignored; restore it, and make SIGTERM a
    # clean exit (the default SIGTERM leaves tritonserver and PyTriton's workspace behind).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = TritonConfig(http_address=a.host, http_port=a.http, grpc_address=a.host, grpc_port=a.grpc,
                       metrics_address=a.host, metrics_port=a.metrics, allow_cpu_metrics=True,
                       exit_timeout_secs=5)  # the default 30 s makes every shutdown slow
    # PyTriton guards the repository index behind a random token by default; plain tritonserver does
    # not, and inferprof lists the served models from it when a --model is wrong.
    security = None if a.restrict_repository else TritonSecurityConfig(
        restricted_endpoints=["shared-memory", "trace", "logging"])
    try:
        with Triton(config=cfg, security_config=security) as triton:
            bind_models(triton)
            print(f"READY http={a.host}:{a.http} grpc={a.host}:{a.grpc} metrics={a.host}:{a.metrics} "
                  f"ttft_ms={Schedule.ttft_s * 1e3:g} itl_ms={Schedule.itl_s * 1e3:g} pid={os.getpid()}", flush=True)
            triton.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
