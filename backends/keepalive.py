"""A keep-alive connection for control calls made many times in a row (the /tokenize prompt
calibration makes one or more per prompt). urllib opens a connection per call; over https that is
a full TLS handshake each time, on the server's cores too. Same settings as the other control
calls: the TLS context of backends/tls.py and, for https, the HTTPS_PROXY tunnel."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from backends import tls


class KeepAlive:
    def __init__(self, base_url: str, timeout: float):
        self.parts = urlsplit(base_url)
        self.prefix = self.parts.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        p = self.parts
        if p.scheme != "https":
            return http.client.HTTPConnection(p.hostname, p.port or 80, timeout=self.timeout)
        host, port = p.hostname, p.port or 443
        proxy = tls.from_env_proxy(self.parts.geturl())
        ctx = tls.context_for(p.geturl())
        if proxy[0]:
            c = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=self.timeout, context=ctx)
            c.set_tunnel(host, port)
            return c
        return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)

    def post_json(self, path: str, body: dict) -> tuple[int, bytes]:
        """(status, body); raises OSError or http.client.HTTPException when the server is gone
        (a kept-alive connection the server closed is reopened once)."""
        data = json.dumps(body).encode()
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = self._open()
                self.conn.request("POST", self.prefix + path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
