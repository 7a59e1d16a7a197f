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
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from profiler.verdict import share_verdict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CASES = {
    # closed loop, TPOT/E2E SLOs (the first version's cases)
    "h100": {"preset": "h100-llama3-8b", "in": "128", "out": "32", "slo": "tpot_p99=10ms", "over": "concurrency"},
    "a100": {"preset": "a100-llama3-8b", "in": "128", "out": "32", "slo": "tpot_p99=20ms", "over": "concurrency"},
    "l40s": {"preset": "l40s-llama3-8b", "in": "128", "out": "64", "slo": "e2e_p99=1200ms", "over": "concurrency"},
    # open loop (requests/s), a TTFT SLO
    "h100-rate": {"preset": "h100-llama3-8b", "in": "128", "out": "32", "slo": "ttft_p99=500ms", "over": "rate"},
    "a100-rate": {"preset": "a100-llama3-8b", "in": "128", "out": "32", "slo": "ttft_p99=500ms", "over": "rate"},
    "l40s-rate": {"preset": "l40s-llama3-8b", "in": "128", "out": "64", "slo": "ttft_p99=1000ms", "over": "rate"},
    "h100x8-rate": {"preset": "h100x8-llama3-70b", "in": "128", "out": "32", "slo": "ttft_p99=500ms", "over": "rate"},
}
RANGES = {"concurrency": (1, 256), "rate": (1, 200)}
CAPS = ["--requests", "1500", "--max-duration", "20s", "--min-duration", "5s"]


def geometric(lo: float, hi: float, integer: bool) -> list[float]:
    """10 loads from lo to hi in equal ratios (rounded to whole streams, or to 0.1 request/s)."""
    loads = [lo * (hi / lo) ** (k / 9) for k in range(10)]
    return sorted({round(x) if integer else round(x, 1) for x in loads})


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
    over = case["over"]
    lo, hi = RANGES[over]
    res: dict = {"case": name, "part": part, "seed": seed, **case, "range": (lo, hi), "caps": CAPS}
    flag = "--concurrency" if over == "concurrency" else "--rate"
    if part == "search":
        res.update(sweep(case, ["--find", "max-goodput", "--find-over", over, "--range", f"{lo},{hi}"], out, seed))
        return res
    if part == "grid":
        loads = geometric(lo, hi, over == "concurrency")
    else:  # dense: 9 loads 5 % apart around the centre (whole streams at least one apart)
        if over == "concurrency":
            step = max(1, round(0.05 * centre))
            loads = sorted({max(1, int(centre + k * step)) for k in range(-4, 5)})
        else:
            loads = sorted({round(centre * (1 + 0.05 * k), 1) for k in range(-4, 5)})
    res.update(sweep(case, [flag, ",".join(f"{x:g}" for x in loads), "--converge", "10%"], out, seed))
    res["loads"] = loads
    return res


def needed_n(x: int, n: int, p0: float, most: int = 1_000_000) -> int | None:
    """Requests an unresolved share verdict needs to decide if its violation share stays x/n: the
    smallest n' >= n at which the always-valid interval (profiler.verdict) excludes p0; None when
    the share equals p0 (it never decides) or it would take more than `most`."""
    share = x / n if n else 0.0
    def decided(m: int) -> bool:
        return share_verdict("", round(share * m), m, p0).verdict != "unresolved"
    hi = max(n, 1)
    while not decided(hi):
        hi *= 2
        if hi > most:
            return None
    lo = max(n, hi // 2)
    while lo < hi:  # the smallest decided m in [lo, hi]
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decided(mid) else (mid + 1, hi)
    return hi


def held_to_evidence(probe: dict) -> float | None:
    """GPU-seconds a grid point needs to reach a verdict: its own when decided, else its time
    scaled by the requests its slowest-deciding SLO needs (same req/s, same warm-up cut)."""
    if probe["verdict"] != "unresolved":
        return probe["gpu_seconds"]
    need = probe["n"]
    for s in probe["slos"]:
        if s["verdict"] == "unresolved" and s["statistic"] == "violation share":
            m = needed_n(s["violations"], s["n"], s["target"])
            if m is None:
                return None
            need = max(need, m)
    return probe["gpu_seconds"] * (need + probe["warmup_cut"]) / max(1, probe["n"] + probe["warmup_cut"])


def grid_evidence_seconds(run_dir: str) -> tuple[float, int]:
    """(GPU-seconds of the grid held to the search's evidence, points that would never decide)."""
    probes = json.loads((Path(run_dir) / "search.json").read_text())["probes"]
    est = [held_to_evidence(p) for p in probes]
    return sum(e if e is not None else p["gpu_seconds"] for e, p in zip(est, probes, strict=True)), est.count(None)


def table(rows: list[dict]) -> str:
    """The README table from the collected parts."""
    lines = ["| preset | lengths | SLO | knee (dense grid) | search answers (seeds) | within 5 % or ±1 | "
             "search GPU-s mean (min–max) | 10-point grid GPU-s measured (its answer) | grid held to the evidence "
             "(never deciding) | search / grid held |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in CASES:
        parts = [r for r in rows if r["case"] == name]
        searches = [r for r in parts if r["part"] == "search"]
        grid = next((r for r in parts if r["part"] == "grid"), None)
        dense = next((r for r in parts if r["part"] == "dense"), None)
        if not searches:
            continue
        knee = dense["found"] if dense else None
        found = [r["found"] for r in searches]
        c = CASES[name]
        tol = (lambda k: max(1, 0.05 * k)) if c["over"] == "concurrency" else (lambda k: 0.05 * k)
        ok = [f is not None and knee is not None and abs(f - knee) <= tol(knee) for f in found]
        gs = [r["gpu_seconds"] for r in searches]
        mean = statistics.mean(gs)
        held, never = grid_evidence_seconds(grid["run_dir"]) if grid else (math.nan, 0)
        grid_txt = f"{grid['gpu_seconds']:.0f} ({grid['found']})" if grid else "–"
        dense_txt = f"{knee} ({dense['loads'][0]}..{dense['loads'][-1]})" if dense else "–"
        lines.append(f"| {c['preset']} ({c['over']}) | in {c['in']} / out {c['out']} | {c['slo']} | {dense_txt} | "
                     f"{', '.join(str(f) for f in found)} | {sum(ok)}/{len(ok)} | {mean:.0f} ({min(gs):.0f}–{max(gs):.0f}) | "
                     f"{grid_txt} | {held:.0f} ({never}) | {mean / held:.2f} |")
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
