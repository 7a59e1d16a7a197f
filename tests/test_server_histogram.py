"""The server's own TTFT histogram is read from the page the telemetry session resolved
(`--metrics-url`), not from URL/metrics. A real sweep on the mock, with the engine's metrics
served by a separate loopback page whose histogram puts every first token between 2.5 and 5 s."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest

from profiler.mockproc import MockProcess


class _EnginePage(http.server.BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self):  # noqa: N802
        if self.path != "/engine/metrics":
            self.send_error(404)
            return
        type(self).scrapes += 1
        n = 10 * type(self).scrapes  # grows with every scrape: a positive delta over any point
        body = ("# TYPE vllm:time_to_first_token_seconds histogram\n"
                'vllm:time_to_first_token_seconds_bucket{le="2.5"} 0\n'
                f'vllm:time_to_first_token_seconds_bucket{{le="5.0"}} {n}\n'
                f'vllm:time_to_first_token_seconds_bucket{{le="+Inf"}} {n}\n'
                f"vllm:time_to_first_token_seconds_count {n}\n"
                f"vllm:time_to_first_token_seconds_sum {3.0 * n}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def engine_page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EnginePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/engine/metrics"
    server.shutdown()
    server.server_close()


def test_server_ttft_comes_from_the_metrics_url(engine_page, tmp_path):
    with MockProcess(["--preset", "tiny-cpu"]) as mock:
        r = subprocess.run([sys.executable, "-m", "profiler", "sweep", "--url", mock.url, "--metrics-url", engine_page,
                            "--no-nvml", "--concurrency", "2", "--requests", "6", "--output-tokens", "4",
                            "--out", str(tmp_path), "--json", "--no-report"],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    point = json.loads(r.stdout)["points"][0]
    # Every first token of the page's delta lies in (2.5 s, 5 s]: the median interpolates to 3.75 s.
    # The mock's own histogram (URL/metrics) would give milliseconds.
    assert point["server_ttft_p50_ms"] == pytest.approx(3750.0)
    assert _EnginePage.scrapes >= 2
