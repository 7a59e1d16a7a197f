"""Load from Ray actors against the exact-schedule mock: accuracy, throughput and Ray's overhead.

The mock runs in exact-schedule mode (`--ttft-ms/--itl-ms`, the send time of every chunk logged
right after its socket write), pinned to core 0, as in benchmarks/truth/. The same sweep then runs
with local worker processes and with 1 and 2 Ray actors on a two-node local Ray cluster
(scripts/ray_local.py: two `ray start` processes on loopback, ports 6400-6439). All processes
share this machine's CLOCK_MONOTONIC, so:

- TTFT error (node clock) = a request's first content arrival on the clock of the node that sent
  it − the server's send time of chunk 0: the error of the TTFT *duration* measurement;
- alignment error = the offset the driver applied to that node's times (the true offset is 0
  here), i.e. what putting a node's instants on the driver's clock added (Cristian's estimate);
- chunks/s = content chunks received ÷ (last end − first send), on the driver's clock;
- Ray's overhead per point, from points.jsonl `ray`: the start barrier's skew across workers,
  the latest first request, the shipping time of the records (actor return → driver has them),
  the parse after the load, the margin the jobs arrived with before the barrier.

    python benchmarks/ray/run.py --out results/ray-bench      # figures in benchmarks/ray/README.md
Run it by hand (never a test); figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# name: (concurrency, ttft_ms, itl_ms, requests): chat, 32 prompt tokens, 128 output tokens
SCENARIOS = {"a": (1, 50.0, 10.0, 30), "b": (256, 50.0, 10.0, 1000), "c64": (64, 5.0, 1.0, 1500)}
CONFIGS = {"local-1": ("", 1), "local-2": ("", 2), "ray-1": ("ray", 1), "ray-2": ("ray", 2)}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


truth = _load("truth_run", ROOT / "benchmarks" / "truth" / "run.py")


def run_client(url: str, conc: int, n: int, workers: int, ray_address: str, out: Path) -> tuple[Path, float, float]:
    cmd = [sys.executable, "-m", "profiler.cli", "sweep", "--url", url, "--concurrency", str(conc),
           "--requests", str(n), "--input-tokens", "32", "--output-tokens", "128", "--workers", str(workers),
           "--no-report", "--json", "--out", str(out), "--warmup", "0", "--no-telemetry"]
    if ray_address:
        cmd += ["--ray", ray_address]
    r, cpu, wall = truth.timed(cmd, "inferprof", env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    return Path(json.loads(r.stdout)["run_dir"]), cpu, wall


def _offsets(facts: dict) -> dict[str, int]:
    """The offset applied to each node's times (ns); {} for a local run."""
    return {nd["node"]: nd["clock"][0]["offset_ns"] for nd in facts.get("nodes") or []}


def compare(run_dir: Path, log: pd.DataFrame) -> dict:
    req = pd.read_parquet(run_dir / "requests.parquet")
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    chunks = chunks[chunks["content"]]
    facts = json.loads((run_dir / "points.jsonl").read_text().splitlines()[0])
    offsets = _offsets(facts)
    true0 = log[log["chunk"] == 0].set_index("id")["send_ns"]
    first = chunks.groupby("request")["t_ns"].min()
    req = req.assign(first=req["request"].map(first), true0=req["response_id"].map(true0)).dropna(subset=["first", "true0"])
    shift = req["node"].map(offsets).fillna(0) if offsets else 0
    err_driver = (req["first"] - req["true0"]) / 1e6  # on the driver's clock
    err_node = (req["first"] - shift - req["true0"]) / 1e6  # on the sending node's clock
    span = (req["end_ns"].max() - req["send_ns"].min()) / 1e9
    ray = facts.get("ray") or {}
    pts = pd.read_csv(run_dir / "points.csv").iloc[0]
    return {
        "matched": len(req), "chunks_per_s": len(chunks) / span,
        "ttft_err_mean_ms": err_node.mean(), "ttft_err_p50_ms": err_node.median(),
        "ttft_err_p99_ms": np.percentile(err_node, 99),
        "ttft_err_driver_p99_ms": np.percentile(err_driver, 99),
        "align_err_max_ms": max((abs(o) for o in offsets.values()), default=0) / 1e6,
        "clock_unc_max_ms": ray.get("clock_uncertainty_max_ms", np.nan),
        "start_skew_ms": ray.get("start_skew_ms", np.nan), "start_late_max_ms": ray.get("start_late_max_ms", np.nan),
        "ship_max_ms": ray.get("ship_max_ms", np.nan), "parse_max_ms": ray.get("parse_max_ms", np.nan),
        "dispatch_margin_min_ms": ray.get("dispatch_margin_min_ms", np.nan),
        "worker_cpu_max": facts["client"]["cpu_frac_max_worker"], "lag_p99_ms": facts["client"]["lag_p99_ms"],
        "nodes": len(offsets), "trusted": bool(pts["trusted"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="a,b,c64", help="scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--configs", default=",".join(CONFIGS), help="of: " + ",".join(CONFIGS))
    ap.add_argument("--requests-scale", type=float, default=1.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    out = Path(a.out or ROOT / "results" / time.strftime("ray-bench-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    configs = a.configs.split(",")
    cluster = None
    if any(CONFIGS[c][0] for c in configs):
        cluster = _load("ray_local", ROOT / "scripts" / "ray_local.py").LocalCluster(6400, nodes=2)
        t0 = time.monotonic()
        cluster.start()
        print(f"local Ray cluster up in {time.monotonic() - t0:.1f} s at {cluster.address}", flush=True)
    rows = []
    try:
        for name in a.only.split(","):
            conc, ttft, itl, n = SCENARIOS[name]
            n = max(conc, int(n * a.requests_scale))
            for cfg in configs:
                kind, workers = CONFIGS[cfg]
                proc, url = truth.start_server(ttft, itl, "0")
                try:
                    run_dir, cpu, wall = run_client(url, conc, n, workers, cluster.address if kind else "", out / "runs")
                    with urllib.request.urlopen(url + "/mock/chunk_log", timeout=60) as r:
                        log = pd.read_csv(io.BytesIO(r.read()))
                finally:
                    truth.stop_server(proc)
                row = {"scenario": name, "concurrency": conc, "ttft_ms": ttft, "itl_ms": itl, "requests": n,
                       "config": cfg, **compare(run_dir, log), "driver_cpu_s": cpu, "wall_s": wall}
                rows.append(row)
                print(json.dumps({k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in row.items()},
                                 default=str), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    df = pd.DataFrame(rows)
    (out / "ray.json").write_text(df.to_json(orient="records", indent=2))
    cols = ["scenario", "concurrency", "config", "nodes", "chunks_per_s", "ttft_err_mean_ms", "ttft_err_p50_ms",
            "ttft_err_p99_ms", "ttft_err_driver_p99_ms", "align_err_max_ms", "clock_unc_max_ms", "start_skew_ms",
            "start_late_max_ms", "ship_max_ms", "parse_max_ms", "dispatch_margin_min_ms", "worker_cpu_max",
            "lag_p99_ms", "wall_s", "trusted"]
    truth.write_markdown(df, cols, out / "ray.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
