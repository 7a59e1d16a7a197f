"""How many chunks/s can the mock server send? (exact-schedule mode, ITL 0, N keep-alive streams)

Starts ``python -m backends.mock --ttft-ms 0 --itl-ms 0`` pinned to one core (``taskset -c``),
drives it from this process pinned to another core with a single-threaded epoll client that only
counts ``data: {`` per received buffer and sends the next request when a response ends, and
reports the server's send rate from its own ``vllm:generation_tokens_total`` counter (one token
per chunk) over a fixed window, next to the rate the client counted.

    python benchmarks/mock_server_speed.py --streams 256 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
END = b"\n\n\r\n0\r\n\r\n"


def start_server(cpu: int | None, extra: list[str]) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "backends.mock", "--port", "0", "--ttft-ms", "0", "--itl-ms", "0", *extra]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def scrape_tokens(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            return float(line.rsplit(" ", 1)[1])
    raise RuntimeError("no vllm:generation_tokens_total in /metrics")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(port: int, streams: int, max_tokens: int, seconds: float, warmup: float,
        server_pid: int) -> dict[str, float]:
    """Server chunks/s, client chunks/s and both CPU shares over the measured window."""
    body = (b'{"model":"mock-llm","prompt":"hello world","max_tokens":%d,"stream":true}' % max_tokens)
    req = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    sel = selectors.DefaultSelector()
    tails: dict[socket.socket, bytes] = {}
    for _ in range(streams):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        s.sendall(req)
        sel.register(s, selectors.EVENT_READ)
        tails[s] = b""
    count = 0
    t_start = time.perf_counter()
    t_meas = t_start + warmup
    t_end = t_meas + seconds
    measuring = False
    server0 = 0.0
    count0 = 0
    while True:
        now = time.perf_counter()
        if not measuring and now >= t_meas:
            measuring = True
            server0 = scrape_tokens(port)
            count0 = count
            cpu0 = cpu_seconds(server_pid)
            own0 = time.process_time()
            t_meas = time.perf_counter()
        if now >= t_end:
            break
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            data = s.recv(262144)
            if not data:
                raise RuntimeError("server closed a connection")
            count += data.count(b"data: {")
            tail = tails[s] + data[-16:]
            if tail.endswith(END):
                s.sendall(req)
                tail = b""
            tails[s] = tail[-16:]
    t1 = time.perf_counter()
    own1 = time.process_time()
    cpu1 = cpu_seconds(server_pid)
    server1 = scrape_tokens(port)
    dt = t1 - t_meas
    for s in tails:
        s.close()
    return {"server_chunks_per_s": (server1 - server0) / dt, "client_chunks_per_s": (count - count0) / dt,
            "server_cpu": (cpu1 - cpu0) / dt, "client_cpu": (own1 - own0) / dt}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--server-args", default="", help="extra server flags, e.g. '--record-chunks'")
    a = p.parse_args(argv)
    if a.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {a.client_cpu})
        except OSError:
            pass
    proc, port = start_server(a.server_cpu, a.server_args.split())
    try:
        r = run(port, a.streams, a.max_tokens, a.seconds, a.warmup, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"streams={a.streams} max_tokens={a.max_tokens} server_args='{a.server_args}': "
          f"server sent {r['server_chunks_per_s']:,.0f} chunks/s (server CPU {r['server_cpu']:.2f} core, "
          f"{r['server_chunks_per_s'] / max(r['server_cpu'], 1e-9):,.0f} chunks per server CPU-second), "
          f"client counted {r['client_chunks_per_s']:,.0f} chunks/s (client CPU {r['client_cpu']:.2f} core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
