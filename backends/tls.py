"""TLS settings for https:// endpoints: what to trust, what to present, which proxy to tunnel through.

One `TLSSettings` (picklable, frozen) travels inside the `Endpoint` to every worker process; each
process builds its `ssl.SSLContext` from it once (`client_context`). Verification is on by default
against the system store; `--ca-cert FILE` adds a CA, `--insecure` turns verification off (and the
run's manifest says so), `--client-cert/--client-key` present a client certificate (mTLS).

Control calls (models, tokenize, metrics: backends/control.py) run in the parent process over
urllib; `use(settings)` makes them speak with the same settings (`context_for(url)`).

`HTTPS_PROXY` (and `NO_PROXY`) are read once when the settings are built (`from_options`): the
transports then open a TCP connection to the proxy, send `CONNECT host:port` and start TLS inside
the tunnel (`proxy_connect_request`, `proxy_answer`).
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from backends.errors import BackendError

VERIFY_HINT = "use --ca-cert FILE to trust its CA, or --insecure to skip verification"


@dataclass(frozen=True, slots=True)
class TLSSettings:
    ca_cert: str = ""  # extra CA bundle (PEM); "" = the system store only
    insecure: bool = False  # no certificate or hostname verification
    client_cert: str = ""  # PEM certificate chain presented to the server (mTLS)
    client_key: str = ""  # its private key ("" = inside client_cert)
    proxy_host: str = ""  # HTTPS_PROXY: tunnel through this host with CONNECT
    proxy_port: int = 0

    def manifest(self) -> dict:
        """What manifest.json records (paths, never key material)."""
        d = asdict(self)
        if self.insecure:
            d["warning"] = "certificate verification was OFF (--insecure): the server was not authenticated"
        return d


def from_options(url: str, ca_cert: str = "", insecure: bool = False, client_cert: str = "",
                 client_key: str = "") -> TLSSettings:
    """Settings for `url` from the command line and the environment; BackendError with one line
    when a file is missing or the flags contradict each other."""
    for flag, path in (("--ca-cert", ca_cert), ("--client-cert", client_cert), ("--client-key", client_key)):
        if path and not os.path.isfile(path):
            raise BackendError(f"{flag} {path}: no such file")
    if client_key and not client_cert:
        raise BackendError("--client-key needs --client-cert")
    host, port = _proxy_for(url)
    s = TLSSettings(ca_cert, insecure, client_cert, client_key, host, port)
    client_context(s)  # a bad certificate or key fails now, in one line, not in a worker
    return s


def from_env_proxy(url: str) -> tuple[str, int]:
    """(host, port) of the HTTPS proxy the environment names for `url`, or ("", 0)."""
    return _proxy_for(url)


def _proxy_for(url: str) -> tuple[str, int]:
    """(host, port) of the HTTPS proxy for `url` from HTTPS_PROXY/NO_PROXY, or ("", 0)."""
    proxy = urllib.request.getproxies().get("https", "")
    target = urlsplit(url).hostname or ""
    if not proxy or urllib.request.proxy_bypass(target):
        return "", 0
    p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if p.scheme != "http" or not p.hostname:
        raise BackendError(f"HTTPS_PROXY={proxy!r}: only an http:// proxy (CONNECT) is supported")
    return p.hostname, p.port or 8080


_contexts: dict[TLSSettings, ssl.SSLContext] = {}


def client_context(s: TLSSettings) -> ssl.SSLContext:
    """The SSLContext of `s`, built once per process (contexts hold the session cache)."""
    ctx = _contexts.get(s)
    if ctx is not None:
        return ctx
    try:
        ctx = ssl.create_default_context(cafile=s.ca_cert or None)
        if s.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if s.client_cert:
            ctx.load_cert_chain(s.client_cert, s.client_key or None)
    except (ssl.SSLError, OSError) as e:
        raise BackendError(f"TLS setup failed: {e}") from None
    # Gateways that speak HTTP/2 must pick HTTP/1.1 for us: our transports frame HTTP/1.1.
    ctx.set_alpn_protocols(["http/1.1"])
    _contexts[s] = ctx
    return ctx


def wrap(sock: socket.socket, s: TLSSettings, host: str, session: ssl.SSLSession | None = None,
         handshake: bool = False) -> ssl.SSLSocket:
    """`sock` (connected, to the server or through the proxy's tunnel) as a TLS client socket,
    sending SNI for `host`; `session` resumes an earlier session when the server allows."""
    return client_context(s).wrap_socket(sock, server_hostname=host, do_handshake_on_connect=handshake,
                                         session=session)


def proxy_connect_request(host: str, port: int) -> bytes:
    return f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1")


def proxy_answer(buf: bytes) -> tuple[bool, str] | None:
    """Read the proxy's answer to CONNECT: None while incomplete, else (tunnel open?, status line)."""
    k = buf.find(b"\r\n\r\n")
    if k < 0:
        if len(buf) > 16384:
            return False, "proxy answer too long"
        return None
    line = buf[:k].split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(None, 2)
    return (len(parts) >= 2 and parts[1] == "200"), line


def connect_blocking(s: TLSSettings, host: str, port: int, timeout: float,
                     session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """A blocking TLS connection (threads transport): TCP (via the proxy's tunnel when set), then
    the handshake. Raises OSError (ssl.SSLError included) on failure."""
    addr = (s.proxy_host, s.proxy_port) if s.proxy_host else (host, port)
    raw = socket.create_connection(addr, timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if s.proxy_host:
            raw.sendall(proxy_connect_request(host, port))
            buf = b""
            while (ans := proxy_answer(buf)) is None:
                data = raw.recv(4096)
                if not data:
                    raise ConnectionError("proxy closed the connection during CONNECT")
                buf += data
            if not ans[0]:
                raise ConnectionError(f"proxy refused CONNECT: {ans[1]}")
        return wrap(raw, s, host, session, handshake=True)
    except BaseException:
        raw.close()
        raise


def describe_failure(e: BaseException) -> str:
    """One line for a failed handshake; a verification failure says how to fix it."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {e.verify_message or e} ({VERIFY_HINT})"
    return f"TLS handshake failed: {type(e).__name__}: {e}"


# -- control calls (parent process) ------------------------------------------------------------
_default: list[TLSSettings] = [TLSSettings()]


def use(s: TLSSettings) -> None:
    """Make control calls (backends/control.py) to https:// URLs use `s`."""
    _default[0] = s


def context_for(url: str) -> ssl.SSLContext | None:
    """The context a control call to `url` uses: None for plain http."""
    return client_context(_default[0]) if url.startswith("https://") else None
