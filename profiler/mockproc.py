"""Start and stop the embedded mock server as a separate process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from profiler.errors import UserError


class MockProcess:
    """`with MockProcess(["--preset", "tiny-cpu"]) as m: m.url` — stopped on exit, always."""

    def __init__(self, args: list[str] | None = None, start_timeout_s: float = 30.0):
        self.args = list(args or [])
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockProcess:
        cmd = [sys.executable, "-m", "backends.mock", "--host", "127.0.0.1", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout_s)
        text = line[0].strip() if line else ""
        if not text.startswith("LISTENING "):
            err = ""
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() or "").strip().splitlines()
                err = err[-1] if err else ""
            self.stop()
            raise UserError(f"mock server did not start: {err or text or 'no answer in time'}")
        self.port = int(text.split()[1])
        # Keep draining its pipes so a chatty server never blocks on a full pipe.
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=_drain, args=(stream,), daemon=True).start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> MockProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _drain(stream) -> None:
    try:
        for _ in stream:
            pass
    except (OSError, ValueError):
        pass
