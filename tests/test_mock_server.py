"""The mock server as a real subprocess over real loopback sockets."""

from __future__ import annotations

import csv
import http.client
import io
import json
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backends.mock.perfmodel import PRESETS, power_w

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0


class Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backends.mock", "--port", "0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self._readline_bounded()
        assert line.startswith("LISTENING "), line
        self.port = int(line.split()[1])

    def _readline_bounded(self) -> str:
        box: list[str] = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(TIMEOUT)
        if not box:
            self.proc.kill()
            raise AssertionError("mock server did not print LISTENING in time")
        return box[0]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        return self.proc.returncode

    # clients
    def request(self, method: str, path: str, body: dict | bytes | None = None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        own = conn is None
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        out = r.status, r.read()
        if own:
            c.close()
        return out

    def raw_stream(self, path: str, body: dict) -> tuple[bytes, list[bytes], bool]:
        """(headers, HTTP chunk payloads, saw the terminating zero chunk)."""
        data = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(b"POST %b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                      % (path.encode(), len(data), data))
            buf = b""
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and not buf.endswith(b"\r\n0\r\n\r\n"):
                part = s.recv(65536)
                if not part:
                    break
                buf += part
        head, _, rest = buf.partition(b"\r\n\r\n")
        chunks = []
        done = False
        while rest:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                break
            n = int(size_line, 16)
            if n == 0:
                done = True
                break
            if len(rest) < n + 2:
                break
            chunks.append(rest[:n])
            rest = rest[n + 2:]
        return head, chunks, done

    def metrics(self, path: str = "/metrics") -> dict[str, list]:
        status, body = self.request("GET", path)
        assert status == 200
        fams = {}
        for fam in text_string_to_metric_families(body.decode()):
            fams[fam.name] = fam.samples
        return fams

    def chunk_log(self) -> list[dict]:
        status, body = self.request("GET", "/mock/chunk_log")
        assert status == 200
        return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture
def server_factory():
    servers: list[Server] = []

    def make(*args: str) -> Server:
        s = Server(*args)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(server_factory):
    return server_factory("--preset", "tiny-cpu", "--record-chunks")


def events(chunks: list[bytes]) -> list:
    out = []
    for c in chunks:
        assert c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"data: ") == 1, c
        payload = c[6:-2]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def sample(fams: dict, family: str, name: str | None = None, **labels: str) -> float:
    total = 0.0
    found = False
    for s in fams[family]:
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
            found = True
    assert found, (family, name, labels)
    return total


def test_chat_stream_is_vllm_shaped(server):
    body = {"model": "mock-llm", "messages": [{"role": "system", "content": "be brief"},
                                              {"role": "user", "content": "tell me four things"}],
            "max_tokens": 7, "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    head, chunks, done = server.raw_stream("/v1/chat/completions", body)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert done
    ev = events(chunks)
    assert ev[-1] == "[DONE]"
    role, content, usage = ev[0], ev[1:-2], ev[-2]
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(content) == 7
    assert all(c["choices"][0]["delta"]["content"].startswith(" ") for c in content)
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * 6 + ["length"]
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 6, "total_tokens": 13, "completion_tokens": 7}
    ids = {e["id"] for e in ev[:-1]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(e["object"] == "chat.completion.chunk" and e["model"] == "mock-llm" for e in ev[:-1])


def test_completion_stream_continuous_usage_and_tokens_per_chunk(server_factory):
    srv = server_factory("--tokens-per-chunk", "3")
    body = {"prompt": "one two three four five", "max_tokens": 10, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    _, chunks, done = srv.raw_stream("/v1/completions", body)
    ev = events(chunks)
    assert done and ev[-1] == "[DONE]"
    content = ev[:-2]
    assert len(content) == math.ceil(10 / 3)
    assert [c["usage"]["completion_tokens"] for c in content] == [3, 6, 9, 10]
    assert all(c["usage"]["prompt_tokens"] == 5 for c in content)
    text = "".join(c["choices"][0]["text"] for c in content)
    assert len(text.split()) == 10
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert ev[-2]["choices"] == [] and ev[-2]["usage"]["completion_tokens"] == 10
    assert content[0]["id"].startswith("cmpl-") and content[0]["object"] == "text_completion"


def test_stream_without_usage_has_no_usage_chunk(server):
    _, chunks, done = server.raw_stream("/v1/completions", {"prompt": "x", "max_tokens": 3, "stream": True})
    ev = events(chunks)
    assert done and len(ev) == 4 and ev[-1] == "[DONE]"
    assert all(e["usage"] is None for e in ev[:-1])


def test_non_stream_keep_alive_and_usage(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        for i in range(3):
            status, body = server.request("POST", "/v1/chat/completions",
                                          {"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 4 + i},
                                          conn=conn)
            assert status == 200
            obj = json.loads(body)
            assert obj["object"] == "chat.completion"
            assert obj["usage"]["prompt_tokens"] == 3 and obj["usage"]["completion_tokens"] == 4 + i
            assert len(obj["choices"][0]["message"]["content"].split()) == 4 + i
        status, body = server.request("POST", "/v1/completions", {"prompt": "a b", "max_tokens": 2}, conn=conn)
        obj = json.loads(body)
        assert status == 200 and obj["choices"][0]["text"] == " alpha bravo"
        assert obj["usage"] == {"prompt_tokens": 2, "total_tokens": 4, "completion_tokens": 2,
                                "prompt_tokens_details": None}
    finally:
        conn.close()


def test_default_max_tokens_is_16(server):
    status, body = server.request("POST", "/v1/completions", {"prompt": "hi"})
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 16


def test_info_endpoints_and_errors(server):
    assert server.request("GET", "/health") == (200, b"")
    status, body = server.request("GET", "/v1/models")
    models = json.loads(body)
    assert status == 200 and models["object"] == "list"
    assert models["data"][0]["id"] == "mock-llm" and models["data"][0]["max_model_len"] == PRESETS["tiny-cpu"].max_model_len
    status, body = server.request("POST", "/tokenize", {"prompt": "the quick brown fox"})
    tok = json.loads(body)
    assert status == 200 and tok["count"] == 4 and len(tok["tokens"]) == 4 and tok["max_model_len"] > 0
    status, body = server.request("POST", "/tokenize", {"messages": [{"role": "user", "content": "a b"},
                                                                     {"role": "user", "content": "c"}]})
    assert json.loads(body)["count"] == 3
    status, body = server.request("POST", "/v1/chat/completions",
                                  {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 404
    assert json.loads(body) == {"error": {"message": "The model `gpt-x` does not exist.", "type": "NotFoundError",
                                          "param": "model", "code": 404}}
    status, body = server.request("POST", "/v1/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["code"] == 400
    status, body = server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 10**6})
    assert status == 400 and "maximum context length" in json.loads(body)["error"]["message"]
    status, _ = server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 0})
    assert status == 400
    assert server.request("GET", "/nope")[0] == 404


def test_exact_schedule_chunk_log(server_factory, tmp_path):
    log_path = tmp_path / "chunks.csv"
    ttft_ms, itl_ms, n = 30.0, 15.0, 12
    srv = server_factory("--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--chunk-log", str(log_path))
    seen_ids: list[str] = []

    def one() -> None:
        _, chunks, done = srv.raw_stream("/v1/chat/completions", {"messages": [{"role": "user", "content": "x y"}],
                                                                  "max_tokens": n, "stream": True})
        assert done
        seen_ids.append(events(chunks)[0]["id"])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    live = srv.chunk_log()
    assert srv.stop() == 0
    rows = list(csv.DictReader(log_path.open()))
    assert rows == live  # the CSV at shutdown equals what /mock/chunk_log served
    by_id: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for r in rows:
        by_id[r["id"]].append((int(r["chunk"]), int(r["send_ns"]), int(r["tokens"])))
    assert sorted(by_id) == sorted(seen_ids) and len(seen_ids) == 4
    gaps = []
    for rows_of in by_id.values():
        rows_of.sort()
        assert [c for c, _, _ in rows_of] == list(range(-1, n))
        arrival = rows_of[0][1]
        assert rows_of[0][2] == 2  # prompt tokens on the request row
        for c, t, k in rows_of[1:]:
            assert k == 1
            # never early: chunk c is due ttft + c * itl after the request was read
            assert t - arrival >= (ttft_ms + c * itl_ms) * 1e6
        sends = [t for _, t, _ in rows_of[1:]]
        gaps += [b - a for a, b in zip(sends, sends[1:], strict=False)]
    gaps.sort()
    median = gaps[len(gaps) // 2] / 1e6
    assert 0.5 * itl_ms <= median <= 3 * itl_ms


def test_itl_zero_streams_everything(server_factory):
    srv = server_factory("--ttft-ms", "0", "--itl-ms", "0", "--record-chunks")
    for _ in range(3):
        _, chunks, done = srv.raw_stream("/v1/completions", {"prompt": "a", "max_tokens": 200, "stream": True})
        assert done and len(events(chunks)) == 201
    rows = srv.chunk_log()
    assert sum(1 for r in rows if r["chunk"] != "-1") == 600


def test_fail_rate_is_seeded_and_shaped(server_factory):
    def pattern(srv: Server) -> list[int]:
        return [srv.request("POST", "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] for _ in range(30)]

    a = server_factory("--fail-rate", "0.4", "--seed", "7", "--ttft-ms", "0", "--itl-ms", "0")
    b = server_factory("--fail-rate", "0.4", "--seed", "7", "--ttft-ms", "0", "--itl-ms", "0")
    pa, pb = pattern(a), pattern(b)
    assert pa == pb
    assert set(pa) == {200, 500}
    status, body = next((s, b_) for s, b_ in (a.request("POST", "/v1/completions", {"prompt": "a"})
                                               for _ in range(50)) if s == 500)
    assert json.loads(body)["error"]["code"] == 500


def test_fail_midstream_cuts_the_connection(server_factory):
    srv = server_factory("--fail-midstream", "1.0", "--ttft-ms", "0", "--itl-ms", "1")
    _, chunks, done = srv.raw_stream("/v1/completions", {"prompt": "a", "max_tokens": 20, "stream": True})
    assert not done
    assert 1 <= len(chunks) <= 3
    fams = srv.metrics()
    assert sample(fams, "vllm:request_success", finished_reason="abort") == 1


def test_metrics_counters_grow_by_exact_tokens(server):
    before = server.metrics()
    prompts = ["a b c", "d e f g h", "i"]
    max_tokens = [5, 9, 2]
    for p, m in zip(prompts, max_tokens, strict=True):
        _, chunks, done = server.raw_stream("/v1/completions", {"prompt": p, "max_tokens": m, "stream": True})
        assert done
    status, _ = server.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x y"}],
                                                                "max_tokens": 4})
    assert status == 200
    after = server.metrics()

    def delta(family: str, name: str | None = None, **labels: str) -> float:
        return sample(after, family, name, **labels) - sample(before, family, name, **labels)

    assert delta("vllm:prompt_tokens") == 3 + 5 + 1 + 2
    assert delta("vllm:generation_tokens") == sum(max_tokens) + 4
    assert delta("vllm:request_success", finished_reason="length") == 4
    assert delta("vllm:time_to_first_token_seconds", "vllm:time_to_first_token_seconds_count") == 4
    assert delta("vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_count") == 4
    assert delta("vllm:request_queue_time_seconds", "vllm:request_queue_time_seconds_count") == 4
    assert delta("vllm:inter_token_latency_seconds", "vllm:inter_token_latency_seconds_count") == sum(
        m - 1 for m in max_tokens) + 3
    assert sample(after, "vllm:num_requests_running") == 0
    assert sample(after, "vllm:num_requests_waiting") == 0
    assert sample(after, "vllm:kv_cache_usage_perc") == 0
    assert after["vllm:time_to_first_token_seconds"][0].labels["model_name"] == "mock-llm"


def test_concurrency_raises_ttft_and_itl_as_modelled(server_factory):
    # steps: 2 ms + 1 ms per sequence, so 12 streams step ~7x slower than one
    srv = server_factory("--preset", "tiny-cpu", "--decode-per-seq-us", "1000", "--record-chunks")

    def run(n: int) -> tuple[float, float]:
        start = len(srv.chunk_log())
        threads = [threading.Thread(target=srv.raw_stream, args=(
            "/v1/completions", {"prompt": "a b c d", "max_tokens": 20, "stream": True})) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        rows = srv.chunk_log()[start:]
        per: dict[str, dict[int, int]] = defaultdict(dict)
        for r in rows:
            per[r["id"]][int(r["chunk"])] = int(r["send_ns"])
        assert len(per) == n
        ttft = sum(p[0] - p[-1] for p in per.values()) / n / 1e9
        itl = sum((p[19] - p[0]) / 19 for p in per.values()) / n / 1e9
        return ttft, itl

    ttft1, itl1 = run(1)
    ttft12, itl12 = run(12)
    assert itl12 > 2.5 * itl1
    assert ttft12 > ttft1
    fams = srv.metrics()
    assert sample(fams, "vllm:generation_tokens") == 13 * 20


def test_dcgm_energy_is_the_integral_of_power(server_factory):
    srv = server_factory("--preset", "h100x8-llama3-70b", "--model", "big")
    p = PRESETS["h100x8-llama3-70b"]

    def scrape() -> tuple[float, float, dict]:
        t0 = time.perf_counter()
        fams = srv.metrics("/dcgm/metrics")
        return t0, time.perf_counter(), fams

    a0, a1, fa = scrape()
    time.sleep(0.3)
    b0, b1, fb = scrape()
    energy = fa["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert {s.labels["gpu"] for s in energy} == {str(i) for i in range(8)}
    assert all(s.labels["UUID"] == f"GPU-mock-{s.labels['gpu']}" and s.labels["modelName"] == p.gpu_name
               for s in energy)
    assert all(s.value == p.idle_w for s in fa["DCGM_FI_DEV_POWER_USAGE"])
    e_a = sample(fa, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", gpu="0")
    e_b = sample(fb, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", gpu="0")
    # idle: the server read its clock somewhere inside each scrape's bracket
    assert p.idle_w * (b0 - a1) * 1000 - 1 <= e_b - e_a <= p.idle_w * (b1 - a0) * 1000 + 1
    # under load power lies between idle and power_w(max batch)
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            srv.raw_stream("/v1/completions", {"model": "big", "prompt": "a", "max_tokens": 30, "stream": True})

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    c0, c1, fc = scrape()
    time.sleep(0.5)
    d0, d1, fd = scrape()
    done.set()
    for t in threads:
        t.join(TIMEOUT)
    e_c = sample(fc, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", gpu="3")
    e_d = sample(fd, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", gpu="3")
    assert p.idle_w * (d0 - c1) * 1000 - 1 <= e_d - e_c <= power_w(p, 4) * (d1 - c0) * 1000 + 1
    assert e_d - e_c > p.idle_w * (d1 - c0) * 1000  # it was busy, so above idle on average
    assert sample(fd, "DCGM_FI_DEV_GPU_UTIL", gpu="0") > 0
    # the same GPU block is on /metrics next to vLLM's metrics
    full = srv.metrics()
    assert "DCGM_FI_DEV_POWER_USAGE" in full and "vllm:num_requests_running" in full


def test_triton_generate_stream(server):
    body = {"text_input": "a b c d", "max_tokens": 5, "stream": True,
            "return_num_input_tokens": True, "return_num_output_tokens": True}
    head, chunks, done = server.raw_stream("/v2/models/mock-llm/generate_stream", body)
    assert head.startswith(b"HTTP/1.1 200") and done
    ev = events(chunks)
    assert "[DONE]" not in ev and len(ev) == 5
    assert ev[0]["num_input_tokens"] == 4 and all("num_input_tokens" not in e for e in ev[1:])
    assert sum(e["num_output_tokens"] for e in ev) == 5
    assert all(e["model_name"] == "mock-llm" and e["model_version"] == "1" for e in ev)
    # vLLM-backend style: sampling_parameters as a JSON string
    _, chunks, _ = server.raw_stream("/v2/models/mock-llm/generate_stream",
                                     {"text_input": "a", "sampling_parameters": json.dumps({"max_tokens": 3})})
    assert len(events(chunks)) == 3
    status, body = server.request("POST", "/v2/models/mock-llm/generate", {"text_input": "a b", "max_tokens": 4,
                                                                          "return_num_output_tokens": True})
    obj = json.loads(body)
    assert status == 200 and obj["num_output_tokens"] == 4 and len(obj["text_output"].split()) == 4
    status, body = server.request("POST", "/v2/models/other/generate_stream", {"text_input": "a"})
    assert status == 400 and "error" in json.loads(body)
    status, body = server.request("GET", "/v2")
    assert "generate" in json.loads(body)["extensions"]
    assert server.request("GET", "/v2/health/ready")[0] == 200
    status, body = server.request("GET", "/v2/models/mock-llm")
    assert status == 200 and json.loads(body)["name"] == "mock-llm"


def test_triton_error_after(server_factory):
    srv = server_factory("--triton-error-after", "2")
    head, chunks, done = srv.raw_stream("/v2/models/mock-llm/generate_stream", {"text_input": "a", "max_tokens": 6})
    assert head.startswith(b"HTTP/1.1 200") and done
    ev = events(chunks)
    assert len(ev) == 3 and "text_output" in ev[1] and "error" in ev[2]


def test_bad_flags_exit_2_with_one_line():
    for args in (["--preset", "nope"], ["--jitter", "weird:1", "--itl-ms", "1"], ["--tokens-per-chunk", "0"],
                 ["--fail-rate", "2"], ["--port", "x"]):
        r = subprocess.run([sys.executable, "-m", "backends.mock", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=TIMEOUT)
        assert r.returncode == 2, args
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_jitter_scales_the_exact_schedule(server_factory):
    # uniform:2,3 multiplies every TTFT and ITL by a factor in [2, 3], so chunk i can never be sent
    # before 2 * (ttft + i * itl); without jitter it would be due at ttft + i * itl
    srv = server_factory("--ttft-ms", "4", "--itl-ms", "3", "--jitter", "uniform:2,3", "--record-chunks")
    _, chunks, done = srv.raw_stream("/v1/completions", {"prompt": "a", "max_tokens": 8, "stream": True})
    assert done
    rows = srv.chunk_log()
    arrival = int(rows[0]["send_ns"])
    sends = [int(r["send_ns"]) for r in rows[1:]]
    assert len(sends) == 8
    for i, t in enumerate(sends):
        assert t - arrival >= 2 * (4 + 3 * i) * 1e6
