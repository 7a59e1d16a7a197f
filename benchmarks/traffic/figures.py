"""Figures of benchmarks/traffic/README.md: production-like traffic on the mock (and, with
--vllm URL, on a real vLLM server). Prints markdown tables. Run from the repository root:

    nice -n 5 python3 benchmarks/traffic/figures.py [--vllm http://127.0.0.1:8023 --tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "workloads" / "data" / "samples"
OUT = Path("/tmp/inferprof-traffic-figures")


def sweep(*args: str) -> Path:
    cmd = [sys.executable, "-m", "profiler.cli", "sweep", "--out", str(OUT), "--json", "--no-report", "--no-nvml", *args]
    print("$ inferprof " + " ".join(cmd[4:]), file=sys.stderr)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    if r.returncode:
        sys.exit(r.stderr[-2000:])
    return Path(json.loads(r.stdout.splitlines()[-1])["run_dir"])


def table(rows: list[dict]) -> None:
    df = pd.DataFrame(rows)
    print("| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns))
    for _, r in df.iterrows():
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    print()


def prefix_series(base: list[str], total: int, lengths: list[int], title: str) -> None:
    print(f"### {title}\n")
    rows = []
    for L in lengths:
        extra = ["--input-tokens", str(total)] if L == 0 else [
            "--prefix-groups", "4", "--prefix-tokens", str(L), "--input-tokens", str(total - L)]
        # a seed of its own per run: a server's prefix cache outlives a run, and the same seed
        # would rebuild the same prompts
        run = sweep(*base, *extra, "--seed", str(1000 + L))
        p = pd.read_csv(run / "points.csv").iloc[0]
        rows.append({"shared prefix tokens": L, "prefix_shareable_frac": float(p.get("prefix_shareable_frac", math.nan)),
                     "server_prefix_hit_rate": float(p["server_prefix_hit_rate"]),
                     "ttft_p50_ms": float(p["ttft_p50_ms"]), "ttft_p99_ms": float(p["ttft_p99_ms"])})
    table(rows)


def trace_figure() -> None:
    print("### Mock: Azure 2023 sample trace at 1x, 2x, 4x\n")
    run = sweep("--trace", str(SAMPLES / "azure_conv_2023.csv"), "--trace-speed", "1,2,4")
    p = pd.read_csv(run / "points.csv")
    table([{k: (float(r[k]) if k != "trusted" else str(r[k])) for k in
            ("trace_speed", "rate_target", "rate_achieved", "trace_lag_p99_ms", "ttft_p50_ms", "trusted")}
           for _, r in p.iterrows()])


def mock_figures() -> None:
    prefix_series(["--concurrency", "4", "--requests", "64", "--output-tokens", "8"], 1024,
                  [0, 256, 512, 768, 960], "Mock: shared prefixes (4 groups, 1024-token prompts, concurrency 4)")
    trace_figure()
    print("### Mock: reasoning (uniform:16,64 reasoning tokens of 96 generated)\n")
    run = sweep("--concurrency", "1,8", "--requests", "64", "--output-tokens", "96",
                "--mock-arg=--reasoning-tokens=uniform:16,64")
    p = pd.read_csv(run / "points.csv")
    table([{k: float(r[k]) for k in ("concurrency", "ttft_p50_ms", "ttfa_p50_ms", "ttfa_p99_ms",
                                     "reasoning_tokens_mean", "reasoning_frac")} for _, r in p.iterrows()])
    print("### Mock: 4-turn sessions (64 new tokens a turn, 32-token answers, think 0-0.2 s)\n")
    run = sweep("--concurrency", "4", "--requests", "64", "--turns", "4", "--input-tokens", "64",
                "--output-tokens", "32", "--think-time", "uniform:0,0.2")
    t = pd.read_csv(run / "turns.csv")
    table([{k: float(r[k]) for k in ("turn", "ok", "ttft_p50_ms", "ttft_p99_ms", "input_tokens_mean")}
           for _, r in t.iterrows()])
    p = pd.read_csv(run / "points.csv").iloc[0]
    print(f"prefix_shareable_frac {p['prefix_shareable_frac']:.3f}, "
          f"server_prefix_hit_rate {p['server_prefix_hit_rate']:.3f}\n")


def vllm_figures(url: str, tok: str) -> None:
    base = ["--url", url, "--tokenizer", tok, "--api", "completions", "--concurrency", "1", "--requests", "32",
            "--output-tokens", "2"]
    prefix_series(base, 1920, [0, 512, 1024, 1792], "vLLM CPU: shared prefixes (4 groups, 1920-token prompts, one at a time)")
    print("### vLLM CPU: ShareGPT sample\n")
    run = sweep("--url", url, "--tokenizer", tok, "--dataset", str(SAMPLES / "sharegpt.json"), "--concurrency",
                "1,4", "--requests", "24")
    p = pd.read_csv(run / "points.csv")
    table([{k: float(r[k]) for k in ("concurrency", "input_tokens_total", "output_tokens_total", "ttft_p50_ms",
                                     "tpot_p50_ms", "req_per_s")} for _, r in p.iterrows()])
    print("### vLLM CPU: 3-turn sessions (64 new tokens a turn, 32-token answers)\n")
    run = sweep("--url", url, "--tokenizer", tok, "--concurrency", "2", "--requests", "12", "--turns", "3",
                "--input-tokens", "64", "--output-tokens", "32", "--think-time", "0.1")
    t = pd.read_csv(run / "turns.csv")
    table([{k: float(r[k]) for k in ("turn", "ok", "ttft_p50_ms", "input_tokens_mean")} for _, r in t.iterrows()])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--vllm", default="")
    ap.add_argument("--tokenizer", default="")
    ap.add_argument("--skip-mock", action="store_true")
    ap.add_argument("--trace-only", action="store_true")
    a = ap.parse_args()
    if not a.skip_mock:
        mock_figures()
    if a.trace_only:
        trace_figure()
    if a.vllm:
        vllm_figures(a.vllm, a.tokenizer)
