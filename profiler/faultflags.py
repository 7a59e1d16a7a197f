"""The sweep's flags for timeouts, the error policy and resuming (parsed here, used by profiler/cli.py)."""

from __future__ import annotations

import argparse

from profiler.errors import UserError
from profiler.spec import parse_duration


def add_fault_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("timeouts and error policy")
    g.add_argument("--connect-timeout", default="10s", help="per connection (default 10s); 0 = none")
    g.add_argument("--ttft-timeout", default="60s",
                   help="from the send to the first response body byte (default 60s); 0 = none")
    g.add_argument("--idle-timeout", default="60s", help="between body bytes of a response (default 60s); 0 = none")
    g.add_argument("--max-error-rate", type=float, default=None,
                   help="stop a point once more than this share of a worker's last --error-window requests failed")
    g.add_argument("--error-window", type=int, default=100, help="requests the error rate is judged over (default 100)")
    g.add_argument("--server-down-wait", default="120s",
                   help="how long to wait for a server that stopped answering before the sweep ends (default 120s)")
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted sweep in RUN_DIR from its first unfinished point (spec and "
                        "endpoint from its manifest; load and workload flags are ignored)")


def fault_spec_fields(a) -> dict:
    """The SweepSpec fields of these flags, checked."""
    out = {}
    for flag, field in (("connect_timeout", "connect_timeout_s"), ("ttft_timeout", "ttft_timeout_s"),
                        ("idle_timeout", "idle_timeout_s"), ("server_down_wait", "server_down_wait_s")):
        v = parse_duration(getattr(a, flag))
        if v < 0:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 0")
        out[field] = v
    if a.max_error_rate is not None and not 0 <= a.max_error_rate < 1:
        raise UserError("--max-error-rate must be in [0, 1)")
    if a.error_window < 1:
        raise UserError("--error-window must be >= 1")
    out.update(max_error_rate=a.max_error_rate, error_window=a.error_window)
    return out


def resume_from_args(a):
    """With --resume: open the run folder (profiler.resume.Resume) and take the endpoint flags
    from its manifest (an explicit --url wins: the server may have moved). None without --resume."""
    if not a.resume:
        return None
    from profiler.resume import open_resume

    resume = open_resume(a.resume)
    m = resume.manifest
    ep = m.get("endpoint") or {}
    server = m.get("server") or {}
    client = m.get("client") or {}
    if server.get("kind") == "inferprof mock" and not a.url:
        a.preset, a.mock_arg = server.get("preset", a.preset), list(server.get("args") or [])
    else:
        a.url = a.url or ep.get("url")
    a.backend, a.api, a.model = ep.get("backend", a.backend), ep.get("api", a.api), ep.get("model", a.model)
    a.api_key_env = a.api_key_env or client.get("api_key_env", "")
    a.tokenizer = a.tokenizer or client.get("tokenizer", "")
    a.protocol = client.get("protocol", a.protocol)
    a.no_ignore_eos = m.get("ignore_eos") is False
    for k, v in (client.get("telemetry") or {}).items():  # the same sources as the run began with
        setattr(a, k, v)
    a.out = str(resume.run_dir.parent)
    return resume
