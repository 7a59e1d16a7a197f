"""The epoll loop over TLS: `TLSMux` adds the steps an https:// connection takes before its first
request (proxy tunnel, non-blocking handshake) to `backends.http_mux.Mux`.

A connection goes CONNECTING → [TUNNEL: `CONNECT host:port` to the HTTPS proxy, wait for 200] →
HANDSHAKE (`do_handshake()` retried on each epoll event until it completes) → then exactly the
plain loop's states and code: the connection's socket is replaced by a `TLSPipe` with the same
`recv`/`send` calls, raising SSLWantRead (caught with BlockingIOError) when bytes arrived but no
whole TLS record yet.

Why a pipe over memory BIOs and not an `ssl.SSLSocket`: an SSLSocket reads each record with two
read() syscalls (header, then body) and returns one record per recv(), so under load each chunk
cost a syscall pair and an epoll round trip. The pipe does what the plain loop does: one recv()
takes every byte the kernel holds, stamped once, and all whole records in it are decrypted at
once (benchmarks/truth/README.md, HTTPS section, has the CPU per chunk of both).

Session resumption: the newest resumable session (TLS 1.3 tickets arrive after the handshake, so
it is taken when a connection is parked after a response) is offered by every new connection;
`handshakes` and `resumed` count what happened.
"""

from __future__ import annotations

import ssl
from time import perf_counter_ns

from backends.http1 import RECV_SIZE, Endpoint
from backends.http_mux import _AGAIN, _IN, _OUT, Mux, State, _Conn
from backends.tls import client_context, describe_failure, proxy_answer, proxy_connect_request

_RECORD = 16384  # the most plaintext one TLS record holds: one read() per record, no larger buffer


class TLSPipe:
    """A client TLS connection over a connected non-blocking socket, through memory BIOs, with the
    socket calls the plain loop makes."""

    __slots__ = ("raw", "obj", "inc", "out", "unsent", "accepted", "eof")

    def __init__(self, raw, ctx: ssl.SSLContext, host: str, session: ssl.SSLSession | None):
        self.raw = raw
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=host, session=session)
        self.unsent = b""  # ciphertext the socket did not take yet
        self.accepted = 0  # plaintext bytes that ciphertext carries (see send)
        self.eof = False  # the peer's close_notify arrived: the next recv() answers b""

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.obj.session

    @property
    def session_reused(self) -> bool:
        return self.obj.session_reused

    def _flush(self) -> bool:
        """Write pending ciphertext; True when none is left."""
        data = self.unsent + self.out.read() if self.out.pending else self.unsent
        if data:
            try:
                n = self.raw.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            self.unsent = data[n:]
        return not self.unsent

    def handshake(self) -> bool:
        """Feed what arrived and advance the handshake: True when it is complete."""
        try:
            data = self.raw.recv(RECV_SIZE)
            if not data:
                raise ConnectionResetError("connection closed during the TLS handshake")
            self.inc.write(data)
        except (BlockingIOError, InterruptedError):
            pass
        try:
            self.obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        self._flush()
        return done

    def recv(self, n: int) -> bytes:
        return self.recvmsg(n)[0]

    def recvmsg(self, n: int, ancsize: int = 0) -> tuple[bytes, list, int, None]:
        """One recvmsg() of the socket, answered as the socket's own: the plaintext of every whole
        record it completed (b"" when the peer closed) and the socket's ancillary data (the
        kernel's arrival stamp of the bytes that completed them). BlockingIOError: nothing
        arrived; SSLWantReadError: no whole record yet."""
        if self.eof:
            return b"", [], 0, None
        data, anc, flags, _ = self.raw.recvmsg(n, ancsize)
        if not data:
            return b"", anc, flags, None
        self.inc.write(data)
        parts = []
        closed = False
        try:
            # Read while ciphertext is left: the usual recv() ends on a whole record, and then no
            # SSLWantReadError is raised per recv() (an exception costs as much as the record).
            while self.inc.pending:
                piece = self.obj.read(_RECORD)
                if not piece:
                    closed = True  # b"": the peer's close_notify (what came before it is still data)
                    break
                parts.append(piece)
            while piece := self.obj.read(_RECORD) if self.obj.pending() else b"":
                parts.append(piece)  # plaintext OpenSSL decrypted but held back (a record larger than _RECORD)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closed = True
        if self.out.pending:
            self._flush()
        self.eof = closed
        if not parts:
            if closed:
                return b"", anc, flags, None
            raise ssl.SSLWantReadError("no whole TLS record yet")
        return (parts[0] if len(parts) == 1 else b"".join(parts)), anc, flags, None

    def send(self, data: bytes) -> int:
        """Encrypt and send `data`: len(data) when the socket took it all. Otherwise 0, and the
        loop calls again with the same bytes once the socket is writable: the rest of the
        ciphertext goes then, and the call answers for the plaintext it carries."""
        if self.unsent:
            if not self._flush():
                raise BlockingIOError("TLS record not sent yet")
            n, self.accepted = self.accepted, 0
            return n
        self.obj.write(data)
        if self._flush():
            return len(data)
        self.accepted = len(data)
        return 0


class TLSMux(Mux):
    def __init__(self, endpoint: Endpoint, max_conns: int, read_timeout_s: float, on_done, timeouts=None):
        super().__init__(endpoint, max_conns, read_timeout_s, on_done, timeouts)
        self.tls = endpoint.tls
        self.session: ssl.SSLSession | None = None
        self.handshakes = 0
        self.resumed = 0

    @staticmethod
    def _dial(endpoint: Endpoint) -> tuple[str, int]:
        t = endpoint.tls
        return (t.proxy_host, t.proxy_port) if t.proxy_host else (endpoint.host, endpoint.port)

    def _step_table(self) -> dict:
        steps = super()._step_table()
        steps[State.TUNNEL] = self._on_tunnel
        steps[State.HANDSHAKE] = self._on_handshake
        steps[State.HEAD] = steps[State.BODY] = self._read
        return steps

    def _read(self, c: _Conn) -> None:
        """The plain loop's head/body step; when the peer's close_notify came with the data, its
        end is handled at once (a server may keep the TCP connection open after it)."""
        (self._on_head if c.state == State.HEAD else self._on_body)(c)
        if c.raw is not None and c.state in (State.HEAD, State.BODY) and c.sock.eof:
            (self._on_head if c.state == State.HEAD else self._on_body)(c)

    # -- opening -----------------------------------------------------------------------------
    def _connected(self, c: _Conn) -> None:
        """TCP is up: open the proxy's tunnel, or start TLS."""
        if not self.tls.proxy_host:
            self._start_tls(c)
            return
        try:
            c.sock.send(proxy_connect_request(self.endpoint.host, self.endpoint.port))
        except OSError as e:
            self._drop_connecting(c, f"proxy: {type(e).__name__}: {e}")
            return
        c.buf = b""
        c.state = State.TUNNEL
        self.ep.modify(c.fd, _IN)

    def _on_tunnel(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(RECV_SIZE)
        except _AGAIN:
            return
        except OSError as e:
            self._drop_connecting(c, f"proxy: {type(e).__name__}: {e}")
            return
        if not data:
            self._drop_connecting(c, "proxy closed the connection during CONNECT")
            return
        c.buf += data
        answer = proxy_answer(c.buf)
        if answer is None:
            return
        c.buf = b""
        if not answer[0]:
            self._drop_connecting(c, f"proxy refused CONNECT: {answer[1]}")
            return
        self._start_tls(c)

    def _start_tls(self, c: _Conn) -> None:
        try:
            c.sock = TLSPipe(c.sock, client_context(self.tls), self.endpoint.host, self.session)
        except (OSError, ValueError) as e:
            self._drop_connecting(c, describe_failure(e))
            return
        c.state = State.HANDSHAKE
        self._on_handshake(c)

    def _on_handshake(self, c: _Conn) -> None:
        try:
            done = c.sock.handshake()
        except (OSError, ValueError) as e:
            self._drop_connecting(c, describe_failure(e))
            return
        if not done:
            self.ep.modify(c.fd, (_OUT | _IN) if c.sock.unsent else _IN)
            return
        self.handshakes += 1
        self.resumed += c.sock.session_reused
        c.last_ns = perf_counter_ns()
        Mux._connected(self, c)

    def _park(self, c: _Conn) -> None:
        super()._park(c)
        if self.session is None or not self.session.has_ticket:
            s = c.sock.session
            if s is not None and s.has_ticket:
                self.session = s
