"""Error rates and sample sizes of `inferprof ab`'s sequential test, by simulation.

Each trial is a stream of paired differences z_i = A_i − B_i fed to profiler.choose.sequential
exactly as `inferprof ab` does (running-variance mSPRT, no decision before --min-pairs, budget
--budget pairs, looks after every round of --round pairs). Reported per true effect: the share of
trials that declared a difference (false positives when the effect is 0), with the right sign, the
mean and median pairs used, and the pairs a fixed-sample two-sided z test needs for the same power.

    python3 benchmarks/ab/simulate.py --trials 2000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from profiler.choose.sequential import DECIDED, SeqConfig, first_stop, fixed_n, path  # noqa: E402


def run_trials(z: np.ndarray, cfg: SeqConfig, round_size: int) -> dict:
    """Stop of every trial (row); pairs used are rounded up to whole rounds, as `ab` sends them."""
    mean, half, log_lr = path(z, cfg)
    decided, right, used = [], [], []
    for i in range(z.shape[0]):
        k, state = first_stop(mean[i], half[i], log_lr[i], cfg)
        decided.append(state == DECIDED)
        right.append(state == DECIDED and np.sign(mean[i, k]) == np.sign(z.mean()))
        used.append(min(cfg.max_n, math.ceil((k + 1) / round_size) * round_size))
    return {"decided": np.array(decided), "right_sign": np.array(right), "used": np.array(used)}


def cp_interval(x: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    lo = stats.beta.ppf(alpha / 2, x, n - x + 1) if x else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, x + 1, n - x) if x < n else 1.0
    return float(lo), float(hi)


def scenario(name: str, make, effects, trials: int, cfg: SeqConfig, round_size: int, seed: int) -> list[dict]:
    rows = []
    for j, effect in enumerate(effects):
        rng = np.random.default_rng([seed, j])
        z, sigma = make(rng, effect, trials, cfg.max_n)
        r = run_trials(z, cfg, round_size)
        power = float(r["decided"].mean())
        lo, hi = cp_interval(int(r["decided"].sum()), trials, cfg.alpha)
        same_power = min(power, 1 - 0.5 / trials)  # a measured power of 1 means "at least 1 − 1/(2·trials)"
        rows.append({"scenario": name, "effect": effect, "sigma": sigma, "trials": trials, "declared": power,
                     "declared_ci": [lo, hi], "right_sign": float(r["right_sign"].mean()) if effect else None,
                     "mean_pairs": float(r["used"].mean()), "median_pairs": float(np.median(r["used"])),
                     "fixed_n_same_power": fixed_n(effect, sigma, cfg.alpha, same_power) if effect and power > cfg.alpha
                     else None})
    return rows


def gaussian(rng, effect, trials, m):
    return rng.normal(effect, 1.0, (trials, m)), 1.0


def latency(rng, effect, trials, m):
    """TTFT-like: A and B lognormal (median 100 ms, σ_log 0.5) from different servers, B slower by
    `effect` ms on average; the paired difference's σ is measured from a large draw."""
    a = rng.lognormal(math.log(100), 0.5, (trials, m))
    b = rng.lognormal(math.log(100), 0.5, (trials, m)) + effect
    ref = np.random.default_rng(99)
    sd = float(np.std(ref.lognormal(math.log(100), 0.5, 10**6) - ref.lognormal(math.log(100), 0.5, 10**6)))
    return a - b, sd


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--round", type=int, default=20)
    p.add_argument("--min-pairs", type=int, default=40)
    p.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    a = p.parse_args()
    cfg = SeqConfig(alpha=0.05, horizon=a.budget, min_n=a.min_pairs, max_n=a.budget)
    rows = scenario("gaussian σ=1", gaussian, [0.0, 0.1, 0.2, 0.3], a.trials, cfg, a.round, a.seed)
    rows += scenario("lognormal latency (ms)", latency, [0.0, 5.0, 10.0, 20.0], a.trials, cfg, a.round, a.seed + 1)
    Path(a.out).write_text(json.dumps({"alpha": cfg.alpha, "budget": a.budget, "round": a.round,
                                       "min_pairs": cfg.min_n, "rho2": cfg.rho2, "rows": rows}, indent=2))
    print("| scenario | true effect | declared a difference | 95% CP interval | right sign | mean pairs (median) "
          "| fixed-sample pairs, same power |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fixed = r["fixed_n_same_power"] if r["fixed_n_same_power"] is not None else "–"
        sign = "–" if r["right_sign"] is None else f"{r['right_sign']:.2%}"
        print(f"| {r['scenario']} | {r['effect']:g} | {r['declared']:.2%} | [{r['declared_ci'][0]:.2%}, "
              f"{r['declared_ci'][1]:.2%}] | {sign} | {r['mean_pairs']:.0f} ({r['median_pairs']:.0f}) "
              f"| {fixed} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
