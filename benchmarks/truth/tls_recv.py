"""Client CPU per received chunk, nothing else: a plain socket (recv() and a stamp after it, or
recvmsg() and the kernel's arrival stamp as the epoll loop reads now) vs an ssl.SSLSocket vs the
epoll loop's TLSPipe (memory BIOs, kernel stamps), each reading 100,000 chunks of 180 bytes (one
TLS record each) sent by a forked server in bursts of 64.
Run by hand: `python benchmarks/truth/tls_recv.py [plain plain-kernel sslsocket pipe]`."""

from __future__ import annotations

import os
import select
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backends import rxstamp  # noqa: E402
from backends.mock.tls import self_signed  # noqa: E402
from backends.tls_mux import TLSPipe  # noqa: E402

N = 100_000
CHUNK = b"x" * 180  # about one SSE chunk of a chat stream
CA, SERVER = self_signed(Path(tempfile.mkdtemp(prefix="tls-recv-")))


def serve(port_w: int, mode: str) -> None:
    ls = socket.create_server(("127.0.0.1", 0))
    os.write(port_w, str(ls.getsockname()[1]).encode().ljust(8))
    c, _ = ls.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode in ("sslsocket", "pipe"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(SERVER.cert, SERVER.key)
        c = ctx.wrap_socket(c, server_side=True)
    c.recv(10)
    for i in range(N):
        c.sendall(CHUNK)  # one write = one TLS record
        if i % 64 == 0:
            time.sleep(0.0002)
    c.close()
    os._exit(0)


def connect(mode: str, port: int):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode in ("plain-kernel", "pipe"):
        rxstamp.enable_stamps(s)
    ctx = ssl.create_default_context(cafile=str(CA.cert))
    if mode == "sslsocket":
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    s.setblocking(False)
    if mode == "pipe":
        s = TLSPipe(s, ctx, "127.0.0.1", None)
        while not s.handshake():
            select.select([s.raw], [], [], 1)
    return s


def client(mode: str) -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        serve(w, mode)
    s = connect(mode, int(os.read(r, 8)))
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    s.send(b"go")
    got = recvs = 0
    times, pieces = [], []
    kernel = mode in ("plain-kernel", "pipe")
    offset = rxstamp.clock_offset_ns()
    t0 = time.process_time()
    while got < N * len(CHUNK):  # the hot path of backends/http_mux.py: recv, stamp, keep
        for _fd, _ev in ep.poll(1):
            try:
                if kernel:
                    data, anc, _, _ = s.recvmsg(65536, rxstamp.ANC_SIZE)
                    t = rxstamp.arrival_ns(anc, offset, 0, time.perf_counter_ns())
                else:
                    data = s.recv(65536)
                    t = time.perf_counter_ns()
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            times.append(t)
            pieces.append(data)
            got += len(data)
            recvs += 1
    cpu = time.process_time() - t0
    os.waitpid(pid, 0)
    print(f"{mode:10s} chunks {N}  recvs {recvs}  client CPU {cpu:.2f} s = {cpu / N * 1e6:.1f} us/chunk"
          f" -> {N / cpu:,.0f} chunks per CPU-second")


if __name__ == "__main__":
    for m in sys.argv[1:] or ["plain", "plain-kernel", "sslsocket", "pipe"]:
        client(m)
