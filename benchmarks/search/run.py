"""Capacity search vs a 10-point geometric grid vs a dense grid, on the embedded mock.

For each case (preset, lengths, SLO): the search (`sweep --find max-goodput`) with five seeds; a
10-point geometric grid over the same range; a dense grid around the search's answer. Both grids
run with `--converge` and the same caps, so every grid point is held to the search's standard of
evidence (it runs until its always-valid verdict decides, or to the cap). The dense grid's answer
(the highest passing load below its lowest non-passing one) is the knee.

    nice -n 5 python3 benchmarks/search/run.py --cases h100 --part search --seeds 0,1,2,3,4 --out DIR
    nice -n 5 python3 benchmarks/search/run.py --cases h100 --part grid --out DIR
    nice -n 5 python3 benchmarks/search/run.py --cases h100 --part dense --centre 27 --out DIR
    python3 benchmarks/search/run.py --table DIR/results.json [...]

Each part appends a line to DIR/results.json; --table prints the table of benchmarks/search/README.md.
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


def run_part(name: str, part: str, seed: int, centre: float | None, out: Path) -> dict:
    """One piece of a case: a search (one seed), the 10-point geometric grid, or the dense grid."""
    case = CASES[name]
    res: dict = {"case": name, "part": part, "seed": seed, **case, "range": RANGE, "caps": CAPS}
    if part == "search":
        res.update(sweep(case, ["--find", "max-goodput", "--range", f"{RANGE[0]},{RANGE[1]}"], out, seed))
    elif part == "grid":
        res.update(sweep(case, ["--concurrency", ",".join(map(str, GEOMETRIC)), "--converge", "10%"], out, seed))
        res["loads"] = GEOMETRIC
    else:
        step = max(1, round(0.05 * centre))
        dense = sorted({max(1, int(centre + k * step)) for k in range(-3, 4)})
        res.update(sweep(case, ["--concurrency", ",".join(map(str, dense)), "--converge", "10%"], out, seed))
        res["loads"] = dense
    return res


def table(rows: list[dict]) -> str:
    """The README table from the collected parts."""
    lines = ["| preset | lengths | SLO | knee (dense grid) | search answers (seeds) | within 5 % or ±1 | "
             "search GPU-s mean (min–max) | 10-point grid GPU-s (its answer) | search / grid |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in CASES:
        parts = [r for r in rows if r["case"] == name]
        searches = [r for r in parts if r["part"] == "search"]
        grid = next((r for r in parts if r["part"] == "grid"), None)
        dense = next((r for r in parts if r["part"] == "dense"), None)
        if not searches:
            continue
        knee = dense["found"] if dense else None
        found = [r["found"] for r in searches]
        ok = [f is not None and knee is not None and abs(f - knee) <= max(1, 0.05 * knee) for f in found]
        gs = [r["gpu_seconds"] for r in searches]
        mean = statistics.mean(gs)
        grid_txt = f"{grid['gpu_seconds']:.0f} ({grid['found']})" if grid else "–"
        ratio = f"{mean / grid['gpu_seconds']:.2f}" if grid else "–"
        dense_txt = f"{knee} ({dense['loads'][0]}..{dense['loads'][-1]})" if dense else "–"
        c = CASES[name]
        lines.append(f"| {c['preset']} | in {c['in']} / out {c['out']} | {c['slo']} | {dense_txt} | "
                     f"{', '.join(str(f) for f in found)} | {sum(ok)}/{len(ok)} | {mean:.0f} ({min(gs):.0f}–{max(gs):.0f}) | "
                     f"{grid_txt} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--part", default="search", choices=["search", "grid", "dense"])
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (search)")
    ap.add_argument("--centre", type=float, default=None, help="dense grid: its centre (a search's answer)")
    ap.add_argument("--out", default=str(REPO / "results" / "bench-search"))
    ap.add_argument("--table", nargs="*", help="print the table from these results.json files and exit")
    a = ap.parse_args()
    if a.table is not None:
        rows = [json.loads(line) for f in a.table for line in Path(f).read_text().splitlines() if line.strip()]
        print(table(rows))
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in a.cases.split(","):
        for seed in (int(x) for x in a.seeds.split(",")):
            res = run_part(name, a.part, seed, a.centre, out)
            with open(out / "results.json", "a") as f:
                f.write(json.dumps(res) + "\n")
            print(json.dumps({k: res[k] for k in ("case", "part", "seed", "found", "gpu_seconds", "wall_s")}),
                  flush=True)
            if a.part != "search":
                break


if __name__ == "__main__":
    main()
