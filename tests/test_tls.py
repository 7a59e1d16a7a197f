"""https:// end to end: the mock serves TLS with certificates made here, the load generator and the
CLI speak it (verification, --insecure, mTLS, a CONNECT proxy, session resumption, a connection
dropped mid-stream), and an API key never lands in the run folder or the output."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import inferprof

from backends.http1 import parse_url
from backends.http_mux import Feed, Item, make_mux
from backends.http_stream import Connection
from backends.mock.tls import issue, make_ca
from backends.openai import OpenAICodec
from backends.records import ERR_CLOSED, ERR_CONNECT, ERR_HTTP_429, RawStream
from backends.tls import TLSSettings
from backends.tls_mux import TLSMux
from profiler.mockproc import MockProcess
from workloads.requests import RequestSpec

FAST = ["--ttft-ms", "2", "--itl-ms", "1"]
KEY_VAR = "INFERPROF_TEST_KEY"
KEY = "sk-test-7f3a9c0d1e2b4a6f8e0d"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    other = make_ca(d / "other", "some other CA")
    return {"ca": ca, "server": issue(ca, d, "server"), "client": issue(ca, d, "client", (), client=True),
            "stranger": issue(other, d / "other", "stranger", (), client=True)}


def https_mock(pki, *extra: str) -> MockProcess:
    return MockProcess([*FAST, "--tls-cert", str(pki["server"].cert), "--tls-key", str(pki["server"].key), *extra])


def url_of(m: MockProcess) -> str:
    return m.url.replace("http://", "https://")


@pytest.fixture(scope="module")
def mock(pki):
    env_before = os.environ.get(KEY_VAR)
    os.environ[KEY_VAR] = KEY  # the mock reads the key it demands from the same variable
    try:
        m = https_mock(pki, "--require-api-key-env", KEY_VAR).start()
    finally:
        if env_before is None:
            os.environ.pop(KEY_VAR, None)
    yield m
    m.stop()


def sweep(url: str, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return inferprof("sweep", "--url", url, "--concurrency", "2", "--requests", "8", "--output-tokens", "8",
                     "--input-tokens", "16", "--no-telemetry", "--out", str(out), *extra,
                     env={KEY_VAR: KEY, **(env or {})})


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("note:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def run_dir_of(r: subprocess.CompletedProcess) -> Path:
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip().splitlines()[-1])


def test_unverified_certificate_is_one_line_exit_2(mock, tmp_path):
    line = one_line_error(sweep(url_of(mock), tmp_path, "--api-key-env", KEY_VAR))
    assert "certificate verification failed" in line and "--ca-cert" in line


def test_insecure_works_and_is_recorded(mock, tmp_path):
    r = sweep(url_of(mock), tmp_path, "--api-key-env", KEY_VAR, "--insecure", "--no-report")
    run_dir = run_dir_of(r)
    assert "NOT verified" in r.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["tls"]["insecure"] is True and "OFF" in manifest["tls"]["warning"]
    assert pd.read_csv(run_dir / "points.csv").loc[0, "errors"] == 0
    facts = json.loads((run_dir / "points.jsonl").read_text().splitlines()[0])
    assert facts["client"]["conns_opening_at_start"] == 0  # both streams' handshakes ended before the start


def test_connections_opened_ahead_finish_their_handshakes_before_the_start(pki):
    with https_mock(pki) as m:
        mux = make_mux(_codec(m, pki).endpoint, 32, 10.0, lambda item, raw: None)
        try:
            mux.open_conns(32)
            assert mux.settle(time.perf_counter_ns()) == 32  # no time given: all still opening
            assert mux.settle(time.perf_counter_ns() + 20 * 10**9) == 0
            assert mux.handshakes == 32 and len(mux.idle) == 32  # open, verified, parked for requests
        finally:
            mux.close()


def test_api_key_never_stored_or_printed_over_https(mock, pki, tmp_path):
    """The key is needed (the mock answers 401 without it) and appears in no file and no output."""
    line = one_line_error(sweep(url_of(mock), tmp_path / "nokey", "--ca-cert", str(pki["ca"].cert)))
    assert "401" in line
    r = sweep(url_of(mock), tmp_path, "--api-key-env", KEY_VAR, "--ca-cert", str(pki["ca"].cert))
    run_dir = run_dir_of(r)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 8 and (req["error"] == "").all() and (req["usage_completion_tokens"] == 8).all()
    assert (run_dir / "report.html").exists()
    assert KEY not in r.stdout + r.stderr
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_mtls(pki, tmp_path):
    m = https_mock(pki, "--tls-client-ca", str(pki["ca"].cert)).start()
    try:
        ca = ["--ca-cert", str(pki["ca"].cert)]
        line = one_line_error(sweep(url_of(m), tmp_path / "none", *ca))
        assert "cannot reach" in line
        stranger = ["--client-cert", str(pki["stranger"].cert), "--client-key", str(pki["stranger"].key)]
        one_line_error(sweep(url_of(m), tmp_path / "stranger", *ca, *stranger))
        client = ["--client-cert", str(pki["client"].cert), "--client-key", str(pki["client"].key)]
        run_dir = run_dir_of(sweep(url_of(m), tmp_path / "ok", *ca, *client, "--no-report"))
        assert pd.read_csv(run_dir / "points.csv").loc[0, "errors"] == 0
        assert json.loads((run_dir / "manifest.json").read_text())["tls"]["client_cert"] == str(pki["client"].cert)
    finally:
        m.stop()


def test_missing_certificate_file_is_one_line(tmp_path):
    line = one_line_error(sweep("https://127.0.0.1:9", tmp_path, "--ca-cert", str(tmp_path / "nope.pem")))
    assert "--ca-cert" in line and "no such file" in line


class _ConnectProxy:
    """A CONNECT-only HTTP proxy on loopback that relays bytes and counts tunnels."""

    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.tunnels: list[str] = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.srv.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._tunnel, args=(c,), daemon=True).start()

    def _tunnel(self, c: socket.socket):
        try:
            self._relay(c)
        except OSError:  # either side reset: the tunnel is over
            pass
        finally:
            c.close()

    def _relay(self, c: socket.socket):
        head = b""
        while b"\r\n\r\n" not in head:
            data = c.recv(4096)
            if not data:
                return
            head += data
        target = head.split()[1].decode()
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up = socket.create_connection((host, int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        socks = [c, up]
        while True:
            ready, _, _ = select.select(socks, [], [], 30)
            if not ready:
                break
            done = False
            for s in ready:
                data = s.recv(65536)
                if not data:
                    done = True
                    break
                (up if s is c else c).sendall(data)
            if done:
                break
        up.close()


@pytest.mark.parametrize("transport", ["epoll", "threads"])
def test_https_proxy_connect(mock, pki, tmp_path, transport):
    proxy = _ConnectProxy()
    try:
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "", "no_proxy": "",
               "https_proxy": f"http://127.0.0.1:{proxy.port}"}
        r = sweep(url_of(mock), tmp_path, "--api-key-env", KEY_VAR, "--ca-cert", str(pki["ca"].cert),
                  "--transport", transport, "--no-report", env=env)
        run_dir = run_dir_of(r)
        assert pd.read_csv(run_dir / "points.csv").loc[0, "errors"] == 0
        assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{mock.port}"}
        assert json.loads((run_dir / "manifest.json").read_text())["tls"]["proxy_port"] == proxy.port
    finally:
        proxy.stop = True


# -- the transports directly ------------------------------------------------------------------
class _ListFeed(Feed):
    def __init__(self, items):
        self.items = list(items)

    def due(self, now):
        out, self.items = self.items, []
        return out

    def exhausted(self):
        return not self.items


def _codec(m: MockProcess, pki) -> OpenAICodec:
    return OpenAICodec(parse_url(url_of(m), TLSSettings(ca_cert=str(pki["ca"].cert))), "mock-llm")


def test_mux_tls_keepalive_and_session_resumption(pki):
    with https_mock(pki) as m:
        codec = _codec(m, pki)
        raws: list[RawStream] = []
        mux = make_mux(codec.endpoint, 1, 10.0, lambda item, raw: raws.append(raw))
        assert isinstance(mux, TLSMux)
        try:
            reqs = [RequestSpec(i, "hello world", 2, 6, True) for i in range(3)]
            mux.run(_ListFeed(Item(i, 0, codec.encode(r)) for i, r in enumerate(reqs)))
            assert mux.handshakes == 1  # three requests on one kept-alive connection
            for c in list(mux.conns.values()):
                mux._close(c)
            mux.run(_ListFeed([Item(9, 0, codec.encode(reqs[0]))]))
            assert mux.handshakes == 2 and mux.resumed == 1
        finally:
            mux.close()
        parsed = [codec.parse(r) for r in raws]
        assert [p.error for p in parsed] == [""] * 4
        assert all(p.usage_completion_tokens == 6 and len(p.content_ns) == 6 for p in parsed)


def test_mux_tls_verification_failure_is_a_connect_error(pki):
    with https_mock(pki) as m:
        codec = OpenAICodec(parse_url(url_of(m)), "mock-llm")  # system store only: our CA is unknown
        raws: list[RawStream] = []
        mux = make_mux(codec.endpoint, 2, 10.0, lambda item, raw: raws.append(raw))
        try:
            mux.run(_ListFeed([Item(0, 0, codec.encode(RequestSpec(0, "hi there", 2, 4, True)))]))
        finally:
            mux.close()
        assert raws[0].error == ERR_CONNECT and "certificate verification failed" in raws[0].error_detail


def test_tls_connection_dropped_mid_stream_is_classified(pki):
    with https_mock(pki, "--fail-midstream", "1") as m:
        codec = _codec(m, pki)
        req = codec.encode(RequestSpec(0, "hello world", 2, 8, True))
        raws: list[RawStream] = []
        mux = make_mux(codec.endpoint, 2, 10.0, lambda item, raw: raws.append(raw))
        try:
            mux.run(_ListFeed([Item(0, 0, req), Item(1, 0, req)]))
        finally:
            mux.close()
        threaded = RawStream()
        conn = Connection(codec.endpoint, read_timeout=10)
        conn.stream(req, threaded, time.perf_counter_ns() + 10**10)
        conn.close()
        for raw in [*raws, threaded]:
            p = codec.parse(raw)
            assert raw.status == 200 and p.error == ERR_CLOSED, (raw.error, raw.error_detail)
            assert 1 <= len(p.content_ns) < 8  # what arrived before the cut is kept


def test_rate_limited_requests_are_classified_not_retried(tmp_path):
    with MockProcess([*FAST, "--rate-limit-rate", "0.5", "--seed", "3"]) as m:
        r = inferprof("sweep", "--url", m.url, "--rate", "40", "--requests", "40", "--output-tokens", "4",
                      "--input-tokens", "8", "--no-telemetry", "--no-report", "--out", str(tmp_path))
    run_dir = run_dir_of(r)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 40 and req["request"].is_unique  # every scheduled request sent once, none resent
    limited = req[req["error"] == ERR_HTTP_429]
    assert 5 <= len(limited) <= 35 and (limited["status"] == 429).all()
    assert limited["error_detail"].str.contains("Retry-After: 1").all()
    assert set(req["error"]) == {"", ERR_HTTP_429}
