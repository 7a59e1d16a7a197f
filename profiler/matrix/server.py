"""One server process per server setting: start in its own process group, wait for health with a
bound, measure cold start, read the version, stop the group.

Cold start = process start -> /health answers 200 (start_to_healthy_s) -> the first streamed token
of one probe request (healthy_to_first_token_s); cold_start_s is the sum. The probe is a streamed
/v1/completions request of 4 tokens, so the figure includes the first request's own warm-up
(CUDA graphs, torch.compile caches) that a real first user would wait for.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 40


class ServerFailed(Exception):
    """The server exited or never became healthy; the message says which, log_tail shows why."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


@dataclass
class Server:
    argv: list[str]
    port: int
    host: str
    log_path: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, env: dict[str, str]) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.started = time.monotonic()
            try:
                self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                             start_new_session=True)  # its own process group
            except OSError as e:
                raise ServerFailed(f"cannot start {self.argv[0]!r}: {e.strerror or e}", "") from None
        return self

    def wait_healthy(self, path: str, timeout_s: float, stop=lambda: False) -> float:
        """Seconds from process start to a 200 on `path`; ServerFailed if it exits, times out or
        `stop()` turns true (a stop request while a slow server loads)."""
        assert self.proc is not None
        while True:
            if stop():
                raise ServerFailed("interrupted while the server started", log_tail(self.log_path))
            if self.proc.poll() is not None:
                raise ServerFailed(f"server exited with code {self.proc.returncode} before it was healthy",
                                   log_tail(self.log_path))
            if _http_ok(self.url + path):
                return time.monotonic() - self.started
            if time.monotonic() - self.started > timeout_s:
                raise ServerFailed(f"server not healthy after {timeout_s:g} s", log_tail(self.log_path))
            time.sleep(0.5)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the process group, SIGKILL what is left after timeout_s; the exit code."""
        if self.proc is None:
            return None
        stop_group(self.proc.pid, timeout_s, lambda: self.proc.poll() is not None)
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def stop_group(pid: int, timeout_s: float, gone) -> None:
    """SIGTERM then SIGKILL the process group `pid` leads (the server and its workers)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # workers left in the group go too
    except ProcessLookupError:
        pass


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return 200 <= r.status < 300
    except (OSError, ValueError, http.client.HTTPException):
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def server_version(url: str) -> str | None:
    """vLLM's GET /version; None from servers without it."""
    try:
        with urllib.request.urlopen(url + "/version", timeout=5) as r:
            v = json.load(r).get("version")
            return str(v) if v else None
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return None


def served_model(url: str) -> str:
    """The first model the server lists on /v1/models ('' when it lists none)."""
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
            data = json.load(r).get("data") or []
            return str(data[0].get("id", "")) if data else ""
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return ""


def first_token_s(host: str, port: int, model: str, timeout_s: float = 300.0) -> float:
    """Seconds until the first non-empty streamed text of one 4-token completion (bounded)."""
    body = json.dumps({"model": model, "prompt": "Hello, my name is", "max_tokens": 4, "stream": True,
                       "temperature": 0}).encode()
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise OSError(f"probe request: HTTP {resp.status} {resp.read(300)!r}")
        for _ in range(10_000):  # bounded: 4 tokens come in a handful of events
            line = resp.readline()
            if not line:
                break
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError("probe request: no token in time")
            text = _event_text(line)
            if text:
                return time.monotonic() - t0
        raise OSError("probe request: stream ended without a token")
    finally:
        conn.close()


def _event_text(line: bytes) -> str:
    line = line.strip()
    if not line.startswith(b"data:") or line == b"data: [DONE]":
        return ""
    try:
        choices = json.loads(line[5:]).get("choices") or [{}]
    except ValueError:
        return ""
    return str(choices[0].get("text") or (choices[0].get("delta") or {}).get("content") or "")
