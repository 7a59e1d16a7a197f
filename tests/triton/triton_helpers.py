"""Helpers and fixtures for tests against a REAL Triton Inference Server (tritonserver 2.51 from the
nvidia-pytriton 0.7.0 wheel, CPU only) serving scripts/triton_stream_server.py.

    pytest -m triton tests/triton

The server venv (~370 MB, ~1 min cold) is cached in ${INFERPROF_CACHE:-~/.cache/inferprof}/triton;
CI should keep that folder. Setup or start failing is a test FAILURE with the script's output,
never a skip. The client side needs tritonclient[grpc,http] in the test interpreter.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRITON_CPU = REPO / "scripts" / "triton_cpu.sh"
SERVER = REPO / "scripts" / "triton_stream_server.py"
MODELS = ("fake_llm", "failing_llm", "vllm_like")
TTFT_MS = 20.0
ITL_MS = 5.0
FAIL_AFTER = 3

SETUP_TIMEOUT_S = 900  # cold pip install: ~1 min here, more on a busy machine
START_TIMEOUT_S = 120  # ~10 s here: tritonserver up in ~1 s, then PyTriton loads each model
STOP_TIMEOUT_S = 30  # clean SIGTERM exit takes 6-10 s (exit_timeout_secs=5)
SWEEP_TIMEOUT_S = 300

os.environ["INFERPROF_NO_IMDS"] = "1"
TIMINGS: dict[str, float] = {}


def _tail(text: str | bytes | None, n: int = 40) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join((text or "").splitlines()[-n:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


@dataclass(frozen=True)
class TritonServer:
    http_url: str
    grpc_url: str  # host:port, as --url takes it with --protocol grpc
    metrics_url: str
    log: Path


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean PyTriton exit), then SIGKILL the whole process group; bounded."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # tritonserver and python-backend stubs left behind
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory) -> TritonServer:
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError as e:
        pytest.fail(f"the client side needs tritonclient: pip install 'tritonclient[grpc,http]' ({e})")
    env = dict(os.environ)
    t0 = time.monotonic()
    try:
        p = subprocess.run(["bash", str(TRITON_CPU), "setup"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=SETUP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/triton_cpu.sh setup did not finish in {SETUP_TIMEOUT_S} s:\n{_tail(e.stderr)}")
    TIMINGS["setup_s"] = time.monotonic() - t0
    if p.returncode != 0:
        pytest.fail(f"scripts/triton_cpu.sh setup failed (exit {p.returncode}):\n{_tail(p.stdout)}\n{_tail(p.stderr)}")
    p = subprocess.run(["bash", str(TRITON_CPU), "python"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        pytest.fail(f"scripts/triton_cpu.sh python failed:\n{_tail(p.stderr)}")
    python = p.stdout.strip().splitlines()[-1]

    work = tmp_path_factory.mktemp("triton")
    log = work / "server.log"
    ports = [free_port() for _ in range(3)]
    http_url = f"http://127.0.0.1:{ports[0]}"
    env["PYTRITON_HOME"] = str(work / "pytriton-home")
    cmd = [python, str(SERVER), "--http", str(ports[0]), "--grpc", str(ports[1]), "--metrics", str(ports[2]),
           "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS), "--fail-after", str(FAIL_AFTER)]
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        # /v2/health/ready answers before PyTriton has bound the models: wait for each model.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(http_ok(f"{http_url}/v2/models/{m}/ready") for m in MODELS):
            if proc.poll() is not None:
                pytest.fail(f"Triton exited during startup (exit {proc.returncode}):\n{_tail(log.read_bytes())}")
            if time.monotonic() > deadline:
                pytest.fail(f"Triton models not ready after {START_TIMEOUT_S} s:\n{_tail(log.read_bytes())}")
            time.sleep(0.25)
        TIMINGS["start_s"] = time.monotonic() - t0
        yield TritonServer(http_url, f"127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}/metrics", log)
    finally:
        t0 = time.monotonic()
        _stop(proc)
        TIMINGS["stop_s"] = time.monotonic() - t0


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line("Triton CPU server: " + ", ".join(f"{k}={v:.1f}" for k, v in TIMINGS.items()))


# ---------------------------------------------------------------- other servers


@dataclass(frozen=True)
class Mock:
    url: str
    model: str


def _start_mock(tmp_path: Path, *args: str):
    log = tmp_path / "mock.log"
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "backends.mock", "--port", "0", *args], cwd=REPO,
                            env=child_env(), stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    port = None
    while time.monotonic() < deadline and port is None:
        line = proc.stdout.readline().decode()
        if line.startswith("LISTENING"):
            port = int(line.split()[1])
        elif not line and proc.poll() is not None:
            break
    if port is None:
        _stop_mock(proc, out)
        pytest.fail(f"mock server did not start:\n{_tail(log.read_bytes())}")
    return proc, out, f"http://127.0.0.1:{port}"


def _stop_mock(proc: subprocess.Popen, out) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()
    out.close()


@pytest.fixture
def mock_server(tmp_path):
    """The project's mock (backends/mock), which also speaks generate_stream; factory by flags."""
    started = []

    def start(*args: str, model: str = "mockllm") -> Mock:
        proc, out, url = _start_mock(tmp_path, "--model", model, "--ttft-ms", "10", "--itl-ms", "2", *args)
        started.append((proc, out))
        return Mock(url, model)

    yield start
    for proc, out in started:
        _stop_mock(proc, out)


class _NoGenerate(http.server.BaseHTTPRequestHandler):
    """Answers like a KServe v2 server without the generate extension (e.g. an older Triton)."""

    def _json(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path in ("/v2/health/ready", "/v2/health/live"):
            self._json(200, {})
        elif self.path == "/v2":
            self._json(200, {"name": "triton", "version": "2.0.0", "extensions": ["model_repository"]})
        elif self.path == "/v2/models/llm":
            self._json(200, {"name": "llm", "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]},
                                                      {"name": "max_tokens", "datatype": "INT32", "shape": [1]}],
                             "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [1]}]})
        else:
            self._json(404, {"error": "Not Found"})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v2/repository/index":
            self._json(200, [{"name": "llm", "version": "1", "state": "READY"}])
        else:
            self._json(404, {"error": "Not Found"})

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def no_generate_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoGenerate)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


# ---------------------------------------------------------------- the CLI


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["INFERPROF_NO_IMDS"] = "1"
    return env


def cli(*args: str, timeout: float = SWEEP_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m profiler.cli ARGS` from this checkout."""
    return subprocess.run([sys.executable, "-m", "profiler.cli", *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def sweep(out: Path, *args: str) -> Path:
    """A small sweep (no report, no telemetry); returns the run folder."""
    p = cli("sweep", *args, "--json", "--no-report", "--out", str(out))
    assert p.returncode == 0, f"sweep {' '.join(args)}\nexit {p.returncode}\n{_tail(p.stdout)}\n{_tail(p.stderr)}"
    doc = None
    for line in reversed(p.stdout.splitlines()):
        if line.strip().startswith("{"):
            doc = json.loads(line)
            break
    assert doc and "run_dir" in doc, p.stdout
    run_dir = Path(doc["run_dir"])
    assert run_dir.is_dir(), run_dir
    return run_dir
