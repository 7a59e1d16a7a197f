"""Coverage of the measured accuracy's 95 % interval on the mock (issue 16).

For each accuracy setting P and each seeded run r: a synthetic eval set of N items (seed r;
arithmetic on even runs, multiple choice on odd ones) is answered by the mock's answer mode
(`--accuracy P --seed r`) and scored with the item's scorer; the run's interval (Clopper–Pearson,
what points.csv reports) covers P or not; Wilson's interval on the same runs is counted beside it. The mock's answers are a pure function of (item, seed) (backends/mock/answers.py), so most
runs are scored on those answers directly; the first `--real` runs of each setting go through the
whole pipeline (`inferprof sweep --eval` against the embedded mock, over real sockets) and must
give exactly the same accuracy and interval, which checks the shortcut.

    python3 benchmarks/quality/coverage.py --runs 100 --items 120 --real 5
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backends.mock.answers import reply  # noqa: E402
from profiler.quality.scorers import parse_scorer  # noqa: E402
from profiler.quality.stats import clopper_pearson, wilson  # noqa: E402
from workloads.evalsets import synthetic_items, write_jsonl  # noqa: E402


def items_for(run: int, n: int) -> list[dict]:
    return synthetic_items("arithmetic" if run % 2 == 0 else "choice", n, run)


def offline(p: float, run: int, n: int) -> tuple[int, int]:
    """(right, n) from the mock's deterministic answers and the real scorers."""
    right = 0
    for it in items_for(run, n):
        scorer = parse_scorer(it["scorer"])
        ref = float(it["reference"]) if it["scorer"] == "numeric" else it["reference"]
        right += int(scorer(reply(it["prompt"], p, run), ref, {}) == 1.0)
    return right, n


def real(p: float, run: int, n: int, work: Path) -> tuple[float, float, float]:
    """(mean, lo, hi) of accuracy from a real one-point sweep."""
    f = work / f"eval-{p}-{run}.jsonl"
    write_jsonl(items_for(run, n), f)
    cmd = [sys.executable, "-m", "profiler", "sweep", "--concurrency", "16", "--requests", str(n),
           "--input-tokens", "8", "--output-tokens", "8", "--eval", str(f), "--no-report", "--no-telemetry",
           "--json", "--out", str(work / "runs"), f"--mock-arg=--accuracy={p}", f"--mock-arg=--seed={run}",
           "--mock-arg=--ttft-ms=1", "--mock-arg=--itl-ms=0"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"sweep failed: {r.stderr[-2000:]}")
    pts = pd.read_csv(Path(json.loads(r.stdout)["run_dir"]) / "points.csv")
    return float(pts["accuracy_mean"][0]), float(pts["accuracy_lo"][0]), float(pts["accuracy_hi"][0])


def exact_coverage(p: float, n: int, interval=clopper_pearson) -> float:
    """P(the interval of Bin(n, p) covers p) = Σ_k C(n,k) p^k (1-p)^(n-k) [lo_k <= p <= hi_k]."""
    total = 0.0
    for k in range(n + 1):
        lo, hi = interval(k, n)
        if lo <= p <= hi:
            total += math.comb(n, k) * p**k * (1 - p) ** (n - k)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--items", type=int, default=120)
    ap.add_argument("--real", type=int, default=5, help="runs per setting through the whole pipeline")
    ap.add_argument("--settings", default="0.6,0.9")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    result = {"runs": a.runs, "items": a.items, "real_runs": a.real, "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for p in (float(x) for x in a.settings.split(",")):
            covered, covered_wilson, means, real_checked, t0 = 0, 0, [], 0, time.perf_counter()
            for run in range(a.runs):
                k, n = offline(p, run, a.items)
                lo, hi = clopper_pearson(k, n)
                covered += lo <= p <= hi
                w_lo, w_hi = wilson(k, n)
                covered_wilson += w_lo <= p <= w_hi
                means.append(k / n)
                if run < a.real:
                    got = real(p, run, a.items, Path(tmp))
                    want = (k / n, lo, hi)
                    if any(abs(x - y) > 1e-5 for x, y in zip(got, want, strict=True)):
                        raise SystemExit(f"P={p} run {run}: the pipeline gave {got}, the answers say {want}")
                    real_checked += 1
            result["settings"][str(p)] = {
                "covered": covered, "coverage": covered / a.runs, "mean_accuracy": sum(means) / len(means),
                "real_pipeline_runs_identical": real_checked, "wall_s": round(time.perf_counter() - t0, 1),
                "exact_coverage": round(exact_coverage(p, a.items), 4), "wilson_covered": covered_wilson,
                "wilson_exact_coverage": round(exact_coverage(p, a.items, wilson), 4)}
            print(f"P={p}: Clopper–Pearson covers P in {covered}/{a.runs} runs (Wilson {covered_wilson}); "
                  f"mean measured accuracy {sum(means) / len(means):.4f}; {real_checked} real sweeps identical; "
                  f"exact coverage at n={a.items}: {exact_coverage(p, a.items):.4f} "
                  f"(Wilson {exact_coverage(p, a.items, wilson):.4f})", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
