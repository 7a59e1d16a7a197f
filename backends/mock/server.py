"""Mock inference server: vLLM's OpenAI API and Triton's generate extension over real HTTP/1.1,
driven by the batching performance model (``perfmodel``/``engine``) or by an exact schedule.

Run: ``python -m backends.mock --port 0 --preset tiny-cpu`` (prints ``LISTENING <port>``).
Endpoints, flags and formulas: ``backends/mock/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from time import perf_counter_ns

from backends.errors import BackendError
from backends.mock import answers, faults, hosted, payloads
from backends.mock import tls as mock_tls
from backends.mock.chunklog import ChunkLog
from backends.mock.http import HttpConnection, Request, response_head
from backends.mock.perfmodel import MOCK_DEFAULT_PRESET, PRESETS, Preset
from backends.mock.prefixcache import PrefixCache, generated_words, prompt_words
from backends.mock.reasoning import FIELDS as REASONING_FIELDS
from backends.mock.reasoning import ReasoningDraws, reasoning_stream
from backends.mock.scheduler import EngineDriver, ExactScheduler, Jitter, Job
from backends.mock.specmodel import server_preset
from backends.mock.telemetry import PowerMeter, ServerStats, dcgm_text, vllm_registry, vllm_text
from backends.mock.tokens import (
    PromptError,
    chat_prompt_tokens,
    count_words,
    message_text,
    prompt_tokens,
    token_id,
)

SSE_TYPE = b"text/event-stream; charset=utf-8"
DEFAULT_MAX_TOKENS = 16


@dataclass
class MockConfig:
    preset: Preset
    model: str
    tokens_per_chunk: int = 1
    fail_rate: float = 0.0
    fail_midstream: float = 0.0
    seed: int = 0
    ttft_ms: float | None = None
    itl_ms: float | None = None
    jitter: Jitter | None = None
    chunk_log: str | None = None
    record_chunks: bool = False
    triton_error_after: int | None = None
    early_role: bool = False
    hostname: str | None = None
    faults: faults.FaultPlan | None = None  # --fault rules (backends/mock/faults.py)
    accuracy: float | None = None  # answer mode (backends/mock/answers.py); None = off
    prefix_block: int = 16  # prefix cache block (tokens); 0 = no prefix caching (backends/mock/prefixcache.py)
    reasoning_tokens: str = ""  # reasoning mode: a workloads.lengths spec (backends/mock/reasoning.py)
    reasoning_field: str = "reasoning_content"

    @property
    def exact(self) -> bool:
        return self.ttft_ms is not None or self.itl_ms is not None


class BadRequest(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def openai_error(message: str, err_type: str = "BadRequestError", code: int = 400,
                 param: str | None = None) -> BadRequest:
    return BadRequest(code, payloads.error_body(message, err_type, code, param))


def triton_error(message: str, code: int = 400) -> BadRequest:
    return BadRequest(code, json.dumps({"error": message}, separators=(",", ":")).encode())


class MockServerApp:
    """The mock inside its own process (``serve`` listens with it): routes requests; owns the stats,
    the power meter, the chunk log and one sender. ``profiler.mockproc.MockProcess`` starts that process."""

    def __init__(self, cfg: MockConfig) -> None:
        self.cfg = cfg
        self.stats = ServerStats()
        self.meter = PowerMeter(cfg.preset, perf_counter_ns())
        self.log = ChunkLog() if (cfg.chunk_log or cfg.record_chunks) else None
        self.rng = random.Random(cfg.seed)
        self.next_id = 0
        if cfg.exact:
            self.sender: ExactScheduler | EngineDriver = ExactScheduler(
                self.stats, self.meter, self.log, cfg.ttft_ms or 0.0, cfg.itl_ms or 0.0, cfg.jitter, cfg.seed)
        else:
            self.sender = EngineDriver(self.stats, self.meter, self.log, cfg.preset)
        self.registry = vllm_registry(cfg.model, self.stats, self._engine_state)
        self.prefix = PrefixCache(cfg.prefix_block, cfg.preset.kv_tokens // cfg.prefix_block) if cfg.prefix_block else None
        self.stats.prefix = self.prefix
        self.reasoning = ReasoningDraws(cfg.reasoning_tokens, cfg.seed, cfg.reasoning_field) if cfg.reasoning_tokens else None
        self.routes: dict[tuple[str, str], Callable[[HttpConnection, Request], None]] = {
            ("GET", "/health"): self._health,
            ("GET", "/v1/models"): self._models,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/chat/completions"): self._chat,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/dcgm/metrics"): self._dcgm,
            ("GET", "/mock/chunk_log"): self._chunk_log,
            ("GET", "/v2"): self._triton_server_meta,
            ("GET", "/v2/health/ready"): self._health,
            ("GET", "/v2/health/live"): self._health,
        }

    # plumbing
    def protocol(self) -> HttpConnection:
        return HttpConnection(self, low_latency_writes=self.cfg.exact)

    def connection_lost(self, conn: HttpConnection) -> None:
        job = conn.job
        if job is not None:
            self.sender.cancel(job)

    def _engine_state(self) -> tuple[int, int, float]:
        running, waiting = self.sender.running_waiting()
        if isinstance(self.sender, EngineDriver):
            kv = self.sender.engine.kv_usage()
        else:
            kv = min(1.0, running / self.cfg.preset.max_num_seqs)
        return running, waiting, kv

    def tick(self) -> None:
        self.meter.tick(perf_counter_ns())

    def handle(self, conn: HttpConnection, req: Request) -> None:
        if self.cfg.faults is not None and self.cfg.faults.intercept(conn, req, self.handle):
            return
        route = self.routes.get((req.method, req.path))
        try:
            if route is not None:
                route(conn, req)
            elif req.path.startswith("/v2/models/"):
                self._triton_model(conn, req)
            elif any(path == req.path for _m, path in self.routes):
                raise BadRequest(405, b'{"detail":"Method Not Allowed"}')
            else:
                raise BadRequest(404, b'{"detail":"Not Found"}')
        except BadRequest as e:
            conn.respond(e.status, e.body)

    # simple endpoints
    def _health(self, conn: HttpConnection, req: Request) -> None:
        conn.respond(200, b"")

    def _models(self, conn: HttpConnection, req: Request) -> None:
        m = self.cfg.model
        now = int(time.time())
        body = {"object": "list", "data": [{
            "id": m, "object": "model", "created": now, "owned_by": "vllm", "root": m, "parent": None,
            "max_model_len": self.cfg.preset.max_model_len,
            "permission": [{"id": "modelperm-mock", "object": "model_permission", "created": now,
                            "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                            "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                            "organization": "*", "group": None, "is_blocking": False}],
        }]}
        conn.respond(200, json.dumps(body, separators=(",", ":")).encode())

    def _json(self, req: Request) -> dict:
        try:
            obj = json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise openai_error(f"Invalid JSON body: {e}") from None
        if not isinstance(obj, dict):
            raise openai_error("The request body must be a JSON object")
        return obj

    def _check_model(self, obj: dict) -> None:
        model = obj.get("model")
        if model is not None and model != self.cfg.model:
            raise openai_error(f"The model `{model}` does not exist.", "NotFoundError", 404, "model")

    def _tokenize(self, conn: HttpConnection, req: Request) -> None:
        obj = self._json(req)
        self._check_model(obj)
        try:
            if "messages" in obj:
                text = message_text(obj["messages"])
            elif isinstance(obj.get("prompt"), str):
                text = obj["prompt"]
            else:
                raise PromptError("give 'prompt' (string) or 'messages'")
        except PromptError as e:
            raise openai_error(str(e)) from None
        words = text.split()
        body = {"count": len(words), "max_model_len": self.cfg.preset.max_model_len,
                "tokens": [token_id(w) for w in words], "token_strs": None}
        conn.respond(200, json.dumps(body, separators=(",", ":")).encode())

    def _metrics(self, conn: HttpConnection, req: Request) -> None:
        now = perf_counter_ns()
        body = vllm_text(self.registry) + dcgm_text(self.cfg.preset, self.meter, now, self.cfg.hostname)
        conn.respond(200, body, b"text/plain; version=0.0.4; charset=utf-8")

    def _dcgm(self, conn: HttpConnection, req: Request) -> None:
        body = dcgm_text(self.cfg.preset, self.meter, perf_counter_ns(), self.cfg.hostname)
        conn.respond(200, body, b"text/plain; version=0.0.4; charset=utf-8")

    def _chunk_log(self, conn: HttpConnection, req: Request) -> None:
        if self.log is None:
            raise BadRequest(404, b'{"detail":"chunk log is off; start the server with --chunk-log FILE or --record-chunks"}')
        conn.respond(200, self.log.csv_bytes(), b"text/csv")

    # generation
    def _max_tokens(self, obj: dict, keys: tuple[str, ...], prompt: int, err: Callable[[str], BadRequest]) -> int:
        value = None
        for k in keys:
            if obj.get(k) is not None:
                value = obj[k]
                break
        if value is None:
            value = DEFAULT_MAX_TOKENS
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise err(f"max_tokens must be an integer >= 1, got {value!r}")
        limit = self.cfg.preset.max_model_len
        if prompt + value > limit:
            raise err(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt + value} tokens ({prompt} in the messages, {value} in the completion). "
                "Please reduce the length of the messages or completion."
            )
        return value

    def _draw_faults(self, n_chunks: int, streaming: bool) -> tuple[bool, int]:
        """(answer 500?, chunks to send before cutting the connection); both draws always happen
        so the sequence of decisions depends only on the seed and the request order."""
        fail = self.rng.random() < self.cfg.fail_rate
        cut = self.rng.random() < self.cfg.fail_midstream
        cut_at = self.rng.randint(1, 3)
        if not streaming or not cut:
            return fail, 1 << 62
        return fail, min(cut_at, n_chunks - 1)

    def _openai(self, conn: HttpConnection, req: Request, chat: bool) -> None:
        obj = self._json(req)
        self._check_model(obj)
        try:
            prompt = chat_prompt_tokens(obj.get("messages")) if chat else prompt_tokens(obj.get("prompt", ""))
        except PromptError as e:
            raise openai_error(str(e)) from None
        if obj.get("n", 1) not in (1, None):
            raise openai_error("the mock serves n=1 only")
        keys = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
        n_tokens = self._max_tokens(obj, keys, prompt, openai_error)
        stream = bool(obj.get("stream", False))
        opts = obj.get("stream_options")
        if opts is not None and not stream:
            raise openai_error("Stream options can only be defined when `stream=True`.")
        opts = opts if isinstance(opts, dict) else {}
        k = self.cfg.tokens_per_chunk
        n_chunks = math.ceil(n_tokens / k)
        fail, cut_after = self._draw_faults(n_chunks, stream)
        if fail:
            raise openai_error("mock injected failure (--fail-rate)", "InternalServerError", 500)
        cached = 0
        if self.prefix is not None:
            cached = self.prefix.lookup(prompt_words(obj, chat), generated_words(n_tokens))
        self.next_id += 1
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self.next_id}"
        created = int(time.time())
        model = self.cfg.model
        if stream and self.cfg.accuracy is not None and not obj.get("ignore_eos"):
            self._answer(conn, req, obj, chat, rid, created, prompt, n_tokens, opts, cut_after)
            return
        if stream:
            head = response_head(200, SSE_TYPE, None, not conn.keep_alive)
            include_usage = bool(opts.get("include_usage", False))
            continuous = bool(opts.get("continuous_usage_stats", False))
            if chat and self.reasoning is not None:
                plan = reasoning_stream(head, rid, created, model, prompt, n_tokens, self.reasoning.draw(n_tokens),
                                        self.reasoning.field, include_usage)
            elif chat:
                plan = payloads.chat_stream(head, rid, created, model, prompt, n_tokens, k, include_usage,
                                            continuous, self.cfg.early_role)
            else:
                plan = payloads.completion_stream(head, rid, created, model, prompt, n_tokens, k,
                                                  include_usage, continuous)
            self._start_stream(conn, req, rid, plan, prompt, n_tokens, cut_after, cached=cached)
        else:
            body = (payloads.chat_response if chat else payloads.completion_response)(
                rid, created, model, prompt, n_tokens)
            final = response_head(200, b"application/json", len(body), not conn.keep_alive) + body
            self._start_job(conn, req, rid, [final], [n_tokens], prompt, n_tokens, cut_after, False, cached=cached)

    def _answer(self, conn, req, obj, chat, rid, created, prompt, n_tokens, opts, cut_after) -> None:
        """Answer mode: the reply of backends/mock/answers.py, stopping naturally."""
        text = message_text(obj.get("messages")) if chat else str(obj.get("prompt", ""))
        pieces = answers.tokens_of(answers.reply(text, self.cfg.accuracy or 0.0, self.cfg.seed))
        finish = "stop" if len(pieces) <= n_tokens else "length"
        pieces = pieces[:n_tokens]
        head = response_head(200, SSE_TYPE, None, not conn.keep_alive)
        plan = answers.answer_plan(head, rid, created, self.cfg.model, chat, prompt, pieces, finish,
                                   bool(opts.get("include_usage", False)))
        cut = cut_after if cut_after >= 1 << 62 else min(cut_after, len(pieces) - 1)  # --fail-midstream
        self._start_stream(conn, req, rid, plan, prompt, len(pieces), cut, finish)

    def _completions(self, conn: HttpConnection, req: Request) -> None:
        self._openai(conn, req, chat=False)

    def _chat(self, conn: HttpConnection, req: Request) -> None:
        self._openai(conn, req, chat=True)

    def _start_stream(self, conn: HttpConnection, req: Request, rid: str, plan: payloads.StreamPlan,
                      prompt: int, n_tokens: int, cut_after: int, reason: str = "length", cached: int = 0) -> None:
        # Headers go out at once, as uvicorn sends them when vLLM's StreamingResponse starts.
        conn.transport.write(plan.head)
        writes, tokens = plan.writes(), plan.tokens
        if self.cfg.faults is not None:
            writes, tokens, cut_after = self.cfg.faults.shape(conn, writes, tokens, cut_after)
        self._start_job(conn, req, rid, writes, tokens, prompt, n_tokens, cut_after, True, reason, cached)

    def _start_job(self, conn: HttpConnection, req: Request, rid: str, writes: list[bytes], tokens: list[int],
                   prompt: int, n_tokens: int, cut_after: int, streaming: bool, reason: str = "length",
                   cached: int = 0) -> None:
        log_idx = self.log.new_request(rid, req.received_ns, prompt) if self.log is not None else -1
        job = Job(conn, writes, tokens, req.received_ns, prompt, n_tokens, log_idx, cut_after)
        job.reason = reason
        job.cached = cached
        conn.job = job
        if isinstance(self.sender, ExactScheduler):
            self.stats.prompt_tokens += prompt
            self.stats.queue.observe(0.0)
        self.sender.add(job, streaming)

    # Triton
    def _triton_server_meta(self, conn: HttpConnection, req: Request) -> None:
        body = {"name": "triton", "version": "2.51.0", "extensions": [
            "classification", "sequence", "model_repository", "model_repository(unload_dependents)",
            "schedule_policy", "model_configuration", "system_shared_memory", "cuda_shared_memory",
            "binary_tensor_data", "parameters", "statistics", "trace", "logging", "generate"]}
        conn.respond(200, json.dumps(body, separators=(",", ":")).encode(), server=b"triton")

    def _triton_model(self, conn: HttpConnection, req: Request) -> None:
        parts = req.path.split("/")[3:]  # after /v2/models/
        model = parts[0] if parts else ""
        rest = parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            rest = rest[2:]
        if model != self.cfg.model:
            raise triton_error(f"Request for unknown model: '{model}' is not found")
        if not rest and req.method == "GET":
            body = {"name": model, "versions": ["1"], "platform": "python",
                    "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]},
                               {"name": "max_tokens", "datatype": "INT32", "shape": [1]},
                               {"name": "stream", "datatype": "BOOL", "shape": [1]},
                               {"name": "sampling_parameters", "datatype": "BYTES", "shape": [1]}],
                    "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]},
                                {"name": "num_input_tokens", "datatype": "UINT32", "shape": [1]},
                                {"name": "num_output_tokens", "datatype": "UINT32", "shape": [1]}]}
            conn.respond(200, json.dumps(body, separators=(",", ":")).encode(), server=b"triton")
        elif rest == ["ready"] and req.method == "GET":
            conn.respond(200, b"", server=b"triton")
        elif rest in (["generate"], ["generate_stream"]) and req.method == "POST":
            self._triton_generate(conn, req, model, rest[0] == "generate_stream")
        else:
            raise triton_error(f"unsupported request {req.method} {req.path}", 404)

    def _triton_generate(self, conn: HttpConnection, req: Request, model: str, stream_ep: bool) -> None:
        try:
            obj = json.loads(req.body)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as e:
            raise triton_error(f"failed to parse the request JSON buffer: {e}") from None
        text = obj.get("text_input")
        if not isinstance(text, str):
            raise triton_error("input 'text_input' is missing or not a string")
        prompt = count_words(text)
        params = obj.get("parameters") if isinstance(obj.get("parameters"), dict) else {}
        sampling = obj.get("sampling_parameters")
        if isinstance(sampling, str):
            try:
                sampling = json.loads(sampling)
            except ValueError:
                raise triton_error("'sampling_parameters' is not valid JSON") from None
        sampling = sampling if isinstance(sampling, dict) else {}
        merged = {**params, **sampling, **{k: v for k, v in obj.items() if k == "max_tokens"}}
        n_tokens = self._max_tokens(merged, ("max_tokens",), prompt, triton_error)
        stream = stream_ep and obj.get("stream", params.get("stream", True)) is not False
        num_in = bool(obj.get("return_num_input_tokens", params.get("return_num_input_tokens", False)))
        num_out = bool(obj.get("return_num_output_tokens", params.get("return_num_output_tokens", False)))
        k = self.cfg.tokens_per_chunk if stream else n_tokens
        n_chunks = math.ceil(n_tokens / k)
        fail, cut_after = self._draw_faults(n_chunks, stream_ep)
        if fail:
            raise triton_error("mock injected failure (--fail-rate)", 500)
        self.next_id += 1
        rid = f"trt-{self.next_id}"
        if stream_ep:
            head = response_head(200, b"text/event-stream", None, not conn.keep_alive, b"triton")
            err_after = self.cfg.triton_error_after
            if err_after is not None and err_after >= n_chunks:
                err_after = None
            plan = payloads.triton_stream(head, model, prompt, n_tokens, k, num_in, num_out, err_after)
            self._start_stream(conn, req, rid, plan, prompt, n_tokens, cut_after,
                               "length" if err_after is None else "error")
        else:
            body = payloads.triton_response(model, prompt, n_tokens, num_in, num_out)
            final = response_head(200, b"application/json", len(body), not conn.keep_alive, b"triton") + body
            self._start_job(conn, req, rid, [final], [n_tokens], prompt, n_tokens, cut_after, False)


def parse_jitter(spec: str) -> Jitter:
    """``lognormal:SIGMA`` (mean-preserving: ``exp(SIGMA*Z - SIGMA**2/2)``) or ``uniform:LO,HI``
    (a factor drawn uniformly in [LO, HI]); each draw multiplies the configured TTFT or ITL."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "lognormal":
            sigma = float(arg)
            if sigma < 0:
                raise ValueError
            return lambda rng: math.exp(sigma * rng.gauss(0.0, 1.0) - sigma * sigma / 2)
        if kind == "uniform":
            lo_s, hi_s = arg.split(",")
            lo, hi = float(lo_s), float(hi_s)
            if not 0 <= lo <= hi:
                raise ValueError
            return lambda rng: rng.uniform(lo, hi)
    except ValueError:
        pass
    raise BackendError(f"bad --jitter {spec!r}: use lognormal:SIGMA or uniform:LO,HI (factors, 0 <= LO <= HI)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"mock-server: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mock-server", description="CPU mock of a vLLM/Triton GPU inference server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    p.add_argument("--preset", default=MOCK_DEFAULT_PRESET, help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--model", default="mock-llm", help="served model name; with --gpu also the spec model "
                   "(a shipped name, HF id or config.json path; default llama-3.1-8b)")
    sm = p.add_argument_group("spec model (replaces --preset): any GPU x model x TP x dtype")
    sm.add_argument("--gpu", help="GPU id from backends/mock/specs/gpu_specs.csv, e.g. h100-sxm, h200, l40s")
    sm.add_argument("--tp", type=int, default=1, help="tensor-parallel size (with --gpu)")
    sm.add_argument("--dtype", default="bf16", help="weight dtype fp16|bf16|fp8 (with --gpu)")
    sm.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype fp16|bf16|fp8 (with --gpu)")
    g = p.add_argument_group("performance-model overrides")
    g.add_argument("--prefill-us-per-token", type=float)
    g.add_argument("--decode-base-ms", type=float)
    g.add_argument("--decode-per-seq-us", type=float)
    g.add_argument("--decode-per-ctx-ns", type=float)
    g.add_argument("--kv-tokens", type=int)
    g.add_argument("--max-num-seqs", type=int)
    g.add_argument("--max-num-batched-tokens", type=int)
    g.add_argument("--max-model-len", type=int)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered HTTP 500")
    p.add_argument("--fail-midstream", type=float, default=0.0,
                   help="fraction of streams cut (connection closed) after 1-3 chunks")
    p.add_argument("--seed", type=int, default=0)
    e = p.add_argument_group("exact-schedule mode (replaces the performance model)")
    e.add_argument("--ttft-ms", type=float)
    e.add_argument("--itl-ms", type=float, help="0 = as fast as possible")
    e.add_argument("--jitter", help="lognormal:SIGMA or uniform:LO,HI")
    p.add_argument("--chunk-log", help="CSV of request arrivals and chunk send times, written at shutdown")
    p.add_argument("--record-chunks", action="store_true", help="keep the chunk log in memory only (/mock/chunk_log)")
    p.add_argument("--triton-error-after", type=int, help="Triton streams: error event after N responses")
    p.add_argument("--early-role-chunk", action="store_true",
                   help="send the chat role chunk with the headers instead of just before the first token")
    p.add_argument("--hostname", help="Hostname label of the simulated GPUs")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    faults.add_args(p)
    p.add_argument("--accuracy", type=float, help="answer mode: synthetic eval items answered right with "
                   "this probability (backends/mock/answers.py)")
    p.add_argument("--prefix-block", type=int, default=16, help="prefix cache block in tokens; 0 = no prefix caching")
    p.add_argument("--reasoning-tokens", default="", help="reasoning mode: tokens of thinking per chat request, "
                   "e.g. 64 or uniform:16,128 (streamed before the answer)")
    p.add_argument("--reasoning-field", default="reasoning_content", choices=REASONING_FIELDS)
    t = p.add_argument_group("TLS (https)")
    t.add_argument("--tls", action="store_true", help="serve https with a new self-signed CA + certificate (paths printed)")
    t.add_argument("--tls-cert", help="serve https with this PEM certificate (chain)")
    t.add_argument("--tls-key", help="its private key")
    t.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mTLS)")
    hosted.add_args(p)
    return p


def config_from_args(a: argparse.Namespace) -> MockConfig:
    if a.gpu is None and a.preset not in PRESETS:
        raise BackendError(f"unknown preset {a.preset!r}; choose from {', '.join(PRESETS)}")
    overrides = {
        "prefill_us_per_token": a.prefill_us_per_token, "decode_base_ms": a.decode_base_ms,
        "decode_per_seq_us": a.decode_per_seq_us, "decode_per_ctx_ns": a.decode_per_ctx_ns,
        "kv_tokens": a.kv_tokens, "max_num_seqs": a.max_num_seqs,
        "max_num_batched_tokens": a.max_num_batched_tokens, "max_model_len": a.max_model_len,
    }
    for k, v in overrides.items():
        if v is not None and v < 0:
            raise BackendError(f"--{k.replace('_', '-')} must be >= 0")
    base = server_preset(a.gpu, a.model, a.tp, a.dtype, a.kv_dtype) if a.gpu else PRESETS[a.preset]
    preset = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    if preset.max_num_seqs < 1 or preset.kv_tokens < 1 or preset.max_model_len < 2:
        raise BackendError("--max-num-seqs, --kv-tokens must be >= 1 and --max-model-len >= 2")
    if preset.max_model_len > preset.kv_tokens:
        preset = replace(preset, max_model_len=preset.kv_tokens)
    if a.tokens_per_chunk < 1:
        raise BackendError("--tokens-per-chunk must be >= 1")
    for name in ("fail_rate", "fail_midstream"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            raise BackendError(f"--{name.replace('_', '-')} must be in [0, 1]")
    for name in ("ttft_ms", "itl_ms"):
        v = getattr(a, name)
        if v is not None and (v < 0 or not math.isfinite(v)):
            raise BackendError(f"--{name.replace('_', '-')} must be >= 0")
    if a.jitter and a.ttft_ms is None and a.itl_ms is None:
        raise BackendError("--jitter needs --ttft-ms and/or --itl-ms")
    if a.triton_error_after is not None and a.triton_error_after < 0:
        raise BackendError("--triton-error-after must be >= 0")
    if a.prefix_block < 0:
        raise BackendError("--prefix-block must be >= 0")
    if a.reasoning_tokens:
        from workloads.lengths import parse_length

        parse_length(a.reasoning_tokens)
    if not 0 <= a.port <= 65535:
        raise BackendError("--port must be in 0..65535")
    return MockConfig(
        preset=preset, model=a.model, tokens_per_chunk=a.tokens_per_chunk, fail_rate=a.fail_rate,
        fail_midstream=a.fail_midstream, seed=a.seed, ttft_ms=a.ttft_ms, itl_ms=a.itl_ms,
        jitter=parse_jitter(a.jitter) if a.jitter else None, chunk_log=a.chunk_log,
        record_chunks=a.record_chunks, triton_error_after=a.triton_error_after,
        early_role=a.early_role_chunk, hostname=a.hostname, faults=faults.plan_from_args(a),
        accuracy=_accuracy(a.accuracy),
        prefix_block=a.prefix_block,
        reasoning_tokens=a.reasoning_tokens, reasoning_field=a.reasoning_field,
    )


def _accuracy(v: float | None) -> float | None:
    if v is not None and not 0.0 <= v <= 1.0:
        raise BackendError("--accuracy must be in [0, 1]")
    return v


async def serve(cfg: MockConfig, host: str, port: int, ssl_context=None, setup=None) -> None:
    loop = asyncio.get_running_loop()
    server = MockServerApp(cfg)
    if setup is not None:
        setup(server)
    srv = await loop.create_server(server.protocol, host, port, backlog=4096, reuse_address=True, ssl=ssl_context)
    real_port = srv.sockets[0].getsockname()[1]
    print(f"LISTENING {real_port}", flush=True)
    if cfg.faults is not None:
        cfg.faults.started = time.monotonic()
        cfg.faults.arm_crash(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def tick() -> None:
        server.tick()
        if not stop.is_set():
            loop.call_later(0.2, tick)

    tick()
    await stop.wait()
    srv.close()
    if cfg.chunk_log and server.log is not None:
        server.log.write(cfg.chunk_log)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop  # optional: faster loop when installed

            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise BackendError("--loop uvloop: uvloop is not installed") from None
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if faults.needs_supervisor(args):
            faults.plan_from_args(args)  # bad rules fail here, once
            return faults.supervise(sys.argv[1:] if argv is None else argv, args)
        cfg = config_from_args(args)
        hosted.check_args(args)
        ssl_context = mock_tls.context_from_args(args)
        loop = _new_loop(args.loop)
    except ValueError as e:
        print(f"mock-server: error: {e}", file=sys.stderr)
        return 2
    try:
        loop.run_until_complete(serve(cfg, args.host, args.port, ssl_context, lambda app: hosted.install(app, args)))
    except OSError as e:
        print(f"mock-server: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()
    return 0
