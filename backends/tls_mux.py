"""The epoll loop over TLS: `TLSMux` adds the steps an https:// connection takes before its first
request (proxy tunnel, non-blocking handshake) to `backends.http_mux.Mux`.

A connection goes CONNECTING → [TUNNEL: `CONNECT host:port` to the HTTPS proxy, wait for 200] →
HANDSHAKE (the socket wrapped with `ssl`, `do_handshake()` retried on each epoll event until it
stops asking for more: SSLWantRead waits for input, SSLWantWrite for room to write) → then exactly
the plain loop's states. Inside them a TLS socket raises SSLWant* where a plain one raises
BlockingIOError; `http_mux` treats both as "nothing yet", so the hot path is the same code.

Each recv() returns at most one TLS record (≤ 16 KiB of plaintext, RECV_SIZE is 64 KiB), so no
decrypted bytes wait inside OpenSSL while epoll says nothing is ready; `_drain` still checks
`pending()` after each read, once per recv on TLS connections only.

Session resumption: the newest resumable session (TLS 1.3 tickets arrive after the handshake, so
it is taken when a connection is parked after a response) is offered by every new connection;
`handshakes` and `resumed` count what happened.
"""

from __future__ import annotations

import ssl
from time import perf_counter_ns

from backends.http1 import RECV_SIZE, Endpoint
from backends.http_mux import _AGAIN, _IN, _OUT, Mux, State, _Conn
from backends.tls import describe_failure, proxy_answer, proxy_connect_request, wrap


class TLSMux(Mux):
    def __init__(self, endpoint: Endpoint, max_conns: int, read_timeout_s: float, on_done):
        super().__init__(endpoint, max_conns, read_timeout_s, on_done)
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
        """The plain loop's head/body step, repeated while OpenSSL holds decrypted bytes."""
        while True:
            (self._on_head if c.state == State.HEAD else self._on_body)(c)
            if c.raw is None or c.state not in (State.HEAD, State.BODY) or not c.sock.pending():
                return

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
            c.sock = wrap(c.sock, self.tls, self.endpoint.host, self.session)
        except (OSError, ValueError) as e:
            self._drop_connecting(c, describe_failure(e))
            return
        c.state = State.HANDSHAKE
        self._on_handshake(c)

    def _on_handshake(self, c: _Conn) -> None:
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.ep.modify(c.fd, _IN)
            return
        except ssl.SSLWantWriteError:
            self.ep.modify(c.fd, _OUT | _IN)
            return
        except (OSError, ValueError) as e:
            self._drop_connecting(c, describe_failure(e))
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
