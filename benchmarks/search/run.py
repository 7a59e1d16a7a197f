"""Capacity search vs a 10-point geometric grid vs a dense grid, on the embedded mock.

For each case (preset, lengths, SLO): the search (`sweep --find max-goodput`) with five seeds; a
10-point geometric grid over the same range; a dense grid around the search's answer. Both grids
run with `--converge` and the same caps, so every grid point is held to the search's standard of
evidence (it runs until its always-valid verdict decides, or to the cap). The dense grid's answer
(the highest passing load below its lowest non-passing one) is the knee.

    nice -n 5 python3 benchmarks/search/run.py [--cases h100,a100,l40s] [--seeds 5] [--out DIR]

Writes DIR/results.json (appended per run) and prints the table of benchmarks/search/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = {
    "h100": {"preset": "h100-llama3-8b", "in": "128", "out": "32", "slo": "tpot_p99=10ms"},
    "a100": {"preset": "a100-llama3-8b", "in": "128", "out": "32", "slo": "tpot_p99=20ms"},
    "l40s": {"preset": "l40s-llama3-8b", "in": "128", "out": "64", "slo": "e2e_p99=1200ms"},
}
RANGE = (1, 256)
CAPS = ["--requests", "1500", "--max-duration", "20s", "--min-duration", "5s"]
GEOMETRIC = sorted({round(RANGE[0] * (RANGE[1] / RANGE[0]) ** (k / 9)) for k in range(10)})


def sweep(case: dict, extra: list[str], out: Path, seed: int = 0) -> dict:
    cmd = [sys.executable, "-m", "profiler", "sweep", "--preset", case["preset"], "--input-tokens", case["in"],
           "--output-tokens", case["out"], "--slo", case["slo"], "--mock-arg=--tokens-per-chunk=4",
           "--no-telemetry", "--no-report", "--json", "--out", str(out), "--seed", str(seed), *CAPS, *extra]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    d = json.loads(p.stdout)
    s = json.loads((Path(d["run_dir"]) / "search.json").read_text())
    return {"run_dir": d["run_dir"], "wall_s": time.monotonic() - t0, "found": s.get("found_load"),
            "gpu_seconds": s.get("gpu_seconds"), "points": len(s.get("probes", [])), "stopped": s.get("stopped"),
            "trail": [(p["load"], p["verdict"], round(p["seconds"], 1)) for p in s.get("probes", [])]}


def run_case(name: str, seeds: int, out: Path) -> dict:
    case = CASES[name]
    res: dict = {"case": name, **case, "range": RANGE, "caps": CAPS, "geometric": GEOMETRIC}
    res["search"] = [sweep(case, ["--find", "max-goodput", "--range", f"{RANGE[0]},{RANGE[1]}"], out, seed)
                     for seed in range(seeds)]
    found = [r["found"] for r in res["search"] if r["found"] is not None]
    centre = statistics.median(found) if found else 32
    res["grid10"] = sweep(case, ["--concurrency", ",".join(map(str, GEOMETRIC)), "--converge", "10%"], out)
    step = max(1, round(0.05 * centre))
    dense = sorted({max(1, int(centre + k * step)) for k in range(-5, 6)})
    res["dense"] = sweep(case, ["--concurrency", ",".join(map(str, dense)), "--converge", "10%"], out)
    res["dense_loads"] = dense
    return res


def row(res: dict) -> str:
    found = [r["found"] for r in res["search"]]
    gs = [r["gpu_seconds"] for r in res["search"]]
    knee = res["dense"]["found"]
    ok = [f is not None and knee is not None and abs(f - knee) <= max(1, 0.05 * knee) for f in found]
    grid = res["grid10"]["gpu_seconds"]
    return (f"| {res['preset']} | in {res['in']} / out {res['out']} | {res['slo']} | {knee} "
            f"(dense {res['dense_loads'][0]}..{res['dense_loads'][-1]}) | {', '.join(str(f) for f in found)} | "
            f"{sum(ok)}/{len(ok)} | {statistics.mean(gs):.0f} ({min(gs):.0f}–{max(gs):.0f}) | "
            f"{grid:.0f} (answer {res['grid10']['found']}) | {statistics.mean(gs) / grid:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "results" / "bench-search"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.json"
    for name in a.cases.split(","):
        res = run_case(name, a.seeds, out)
        with open(log, "a") as f:
            f.write(json.dumps(res) + "\n")
        print(row(res), flush=True)


if __name__ == "__main__":
    main()
