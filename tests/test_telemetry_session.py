"""TelemetrySession and build_sources against a tiny real HTTP server on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from profiler.telemetry import PromSource, Sample, TelemetrySession, build_sources, server_metrics_url

FIX = Path(__file__).parent / "fixtures" / "metrics"


class _Handler(http.server.BaseHTTPRequestHandler):
    pages: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        body = self.pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Serves the mock-server-like page (vLLM + DCGM on one /metrics) and a Triton page."""
    handler = type("H", (_Handler,), {"pages": {
        "/metrics": (FIX / "vllm_cpu.txt").read_bytes() + (FIX / "dcgm_exporter.txt").read_bytes(),
        "/triton/metrics": (FIX / "triton.txt").read_bytes(),
    }})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(session: TelemetrySession, pred, rounds: int = 200) -> list[Sample]:
    got: list[Sample] = []
    for _ in range(rounds):  # bounded: at most rounds x 20 ms
        got += session.drain()
        if pred(got):
            break
        time.sleep(0.02)
    return got


def test_discovery_and_background_sampling(server):
    sources, notices = build_sources(url=server + "/v1", metrics_url=None, dcgm_url=None, nvml=False, gpus=None)
    assert len(sources) == 1 and isinstance(sources[0], PromSource)
    assert sources[0].url == server + "/metrics"  # /v1/metrics 404 -> host root
    assert sources[0].kinds == {"vllm", "dcgm"}
    assert server_metrics_url(sources) == server + "/metrics"
    t0 = time.perf_counter_ns()
    with TelemetrySession(sources, period_s=0.02, notices=notices) as session:
        got = _wait_for(session, lambda g: len({s.t_ns for s in g}) >= 3)
    t1 = time.perf_counter_ns()
    assert len({s.t_ns for s in got}) >= 3  # several polls, not just one
    assert all(t0 <= s.t_ns <= t1 for s in got)  # same clock as perf_counter_ns
    metrics = {(s.source, s.metric) for s in got}
    assert {("vllm", "kv_cache_usage"), ("dcgm", "power_w"), ("dcgm", "sm_active")} <= metrics
    assert [i["name"] for i in session.gpu_info()] == ["NVIDIA H100 80GB HBM3"] * 2
    assert any("vllm" in n and "dcgm" in n for n in session.notices)
    assert session.errors == {}


def test_metrics_url_and_dcgm_url_overrides(server):
    sources, _ = build_sources(url="http://127.0.0.1:1/v1", metrics_url=server + "/triton/metrics",
                               dcgm_url=server, nvml=False, gpus=None)
    assert [s.url for s in sources] == [server + "/triton/metrics", server + "/metrics"]
    assert sources[0].kinds == {"triton"}


def test_unreachable_endpoint_is_a_notice_not_an_error():
    url = f"http://127.0.0.1:{_closed_port()}"
    sources, notices = build_sources(url=url, metrics_url=None, dcgm_url=None, nvml=False, gpus=None)
    assert sources == [] and len(notices) == 1 and "unavailable" in notices[0]


class _Broken:
    name = "broken"
    notices: list[str] = []

    def poll(self):
        raise RuntimeError("boom")

    def gpu_info(self):
        return []

    def close(self):
        pass


def test_failing_sources_do_not_stop_others(server):
    good = PromSource(server + "/triton/metrics", timeout=0.5)
    dead = PromSource(f"http://127.0.0.1:{_closed_port()}/metrics", timeout=0.2)
    session = TelemetrySession([_Broken(), dead, good], period_s=0.02)
    with session:
        got = _wait_for(session, lambda g: len({s.t_ns for s in g}) >= 2 and session.errors["broken"] >= 2)
    assert {s.source for s in got} == {"triton"}
    assert session.errors["broken"] >= 2 and session.errors[dead.name] >= 1
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("telemetry-"))


def test_drain_returns_only_new_samples(server):
    session = TelemetrySession([PromSource(server + "/triton/metrics")], period_s=10.0)
    session.sample_now()
    first = session.drain()
    assert first and session.drain() == []
    session.sample_now()
    assert len(session.drain()) == len(first)
