"""False-positive rate of `inferprof compare` on identical configurations.

Synthetic part: for each trial, two points are drawn from the SAME distributions (lognormal TTFT,
gamma chunk gaps, fixed output length, closed loop) and compared with the bootstrap of
`profiler.report.stats`. A false positive is a "B faster"/"B slower" verdict. Printed per metric
(nominal rate at a 95 % interval: 5 %) and per comparison (any metric flagged), both with the
default verdict rules (5 % minimum effect, tail-sample rule) and the raw rule (interval excludes 0).

Mock part (--mock-pairs N): N pairs of real sweeps of the embedded mock with the same preset and
different seeds, compared with the default options.

    python3 benchmarks/compare_false_positive.py --trials 400
    python3 benchmarks/compare_false_positive.py --trials 200 --mock-pairs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.report import stats as st  # noqa: E402
from profiler.report.compare import DEFAULT_METRICS, CompareOptions, compare_runs, load_runs  # noqa: E402
from profiler.report.samples import PointSamples  # noqa: E402


def synthetic_point(rng: np.random.Generator, n: int, tokens: int, concurrency: int = 4) -> PointSamples:
    ttft = rng.lognormal(np.log(0.030), 0.3, n)
    gaps = rng.gamma(16.0, 0.008 / 16.0, size=(n, tokens - 1))
    decode = gaps.sum(axis=1)
    e2e = ttft + decode
    tpot = (e2e - ttft) / (tokens - 1)
    return PointSamples(point=0, mode="concurrency", load=concurrency,
                        per_request={"ttft": ttft, "itl_token": decode / (tokens - 1), "tpot": tpot, "e2e": e2e},
                        itl_values=gaps.ravel(), itl_group=np.repeat(np.arange(n), tokens - 1), itl_groups=n,
                        out_tokens=np.full(n, float(tokens)), arrival_gap_s=np.full(n, np.nan))


def synthetic(trials: int, n: int, tokens: int, resamples: int, seed: int, shared: bool = False) -> dict:
    data_rng = np.random.default_rng(seed)
    boot_rng = np.random.default_rng(seed + 1)
    metrics = list(DEFAULT_METRICS)
    fp_default = {m: 0 for m in metrics}
    fp_raw = {m: 0 for m in metrics}
    any_default = any_raw = 0
    for _ in range(trials):
        a, b = synthetic_point(data_rng, n, tokens), synthetic_point(data_rng, n, tokens)
        hit_d = hit_r = False
        share_a, share_b = ({}, {}) if shared else (None, None)  # compare's path for a subsampled point
        for m in metrics:
            ea = st.bootstrap_metric(a, m, resamples, boot_rng, shared=share_a)
            eb = st.bootstrap_metric(b, m, resamples, boot_rng, shared=share_b)
            lower = st.lower_is_better(m)
            d = st.difference(ea, eb, 0.95, lower, st.tail_samples_needed(m), st.DEFAULT_MIN_EFFECT)
            r = st.difference(ea, eb, 0.95, lower, 1, 0.0)
            if d.verdict in ("B faster", "B slower"):
                fp_default[m] += 1
                hit_d = True
            if r.verdict in ("B faster", "B slower"):
                fp_raw[m] += 1
                hit_r = True
        any_default += hit_d
        any_raw += hit_r
    return {"trials": trials, "requests": n, "tokens": tokens, "resamples": resamples,
            "per_metric_default": {m: v / trials for m, v in fp_default.items()},
            "per_metric_raw": {m: v / trials for m, v in fp_raw.items()},
            "any_metric_default": any_default / trials, "any_metric_raw": any_raw / trials}


def mock_pairs(pairs: int, requests: int) -> dict:
    flagged, tests = 0, 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(pairs):
            dirs = []
            for seed in (2 * i + 1, 2 * i + 2):
                cmd = [sys.executable, "-m", "profiler.cli", "sweep", "--preset", "tiny-cpu", "--concurrency", "1,2",
                       "--requests", str(requests), "--output-tokens", "32", "--seed", str(seed),
                       "--out", tmp, "--no-report", "--json"]
                res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
                dirs.append(json.loads(res.stdout)["run_dir"])
            df = compare_runs(load_runs(dirs), CompareOptions())
            sig = df[df["verdict"].isin(["B faster", "B slower"])]
            tests += len(df)
            flagged += len(sig)
            rows.append({"pair": i, "tests": len(df), "flagged": sig[["load", "metric", "a", "b"]].to_dict("records")})
    return {"pairs": pairs, "tests": tests, "flagged": flagged,
            "per_test_rate": flagged / tests if tests else float("nan"), "details": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--requests", type=int, default=100, help="requests per synthetic point")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--resamples", type=int, default=st.DEFAULT_RESAMPLES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", action="store_true",
                    help="the metrics of a point share one set of draws (as compare does for a subsampled point)")
    ap.add_argument("--mock-pairs", type=int, default=0, help="also compare N pairs of real mock sweeps")
    ap.add_argument("--mock-requests", type=int, default=60)
    a = ap.parse_args()
    syn = synthetic(a.trials, a.requests, a.tokens, a.resamples, a.seed, a.shared)
    print(f"synthetic: {syn['trials']} identical pairs, {syn['requests']} requests × {syn['tokens']} tokens, "
          f"{syn['resamples']} resamples, 95 % percentile intervals{', shared draws' if a.shared else ''}")
    print(f"{'metric':<18}{'default rules':>15}{'raw (CI excl. 0)':>18}")
    for m in syn["per_metric_default"]:
        print(f"{m:<18}{syn['per_metric_default'][m]:>15.1%}{syn['per_metric_raw'][m]:>18.1%}")
    print(f"{'any of 7 metrics':<18}{syn['any_metric_default']:>15.1%}{syn['any_metric_raw']:>18.1%}")
    if a.mock_pairs:
        mock = mock_pairs(a.mock_pairs, a.mock_requests)
        print(f"mock: {mock['pairs']} pairs (tiny-cpu, concurrency 1,2, {a.mock_requests} requests, seeds differ): "
              f"{mock['flagged']} of {mock['tests']} tests flagged = {mock['per_test_rate']:.1%}")
        for r in mock["details"]:
            for f in r["flagged"]:
                print(f"  pair {r['pair']}: {f['metric']} at {f['load']:g}: {f['a']:.4g} -> {f['b']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
