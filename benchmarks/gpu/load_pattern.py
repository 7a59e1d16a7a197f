#!/usr/bin/env python3
"""A known GPU load for the telemetry truth check: idle, full matmul load, 50 % duty cycle, idle.

    python3 benchmarks/gpu/load_pattern.py [--idle 5] [--full 10] [--duty 10] [--period 0.2] [--size 8192]

Runs in its own process (the sampler's thread must not share a GIL with the launch loop). Prints
one JSON line per phase, {"phase", "start_ns", "end_ns", "busy_s", "matmuls", "size"}, on
`time.perf_counter_ns()`: CLOCK_MONOTONIC, the clock of the parent's telemetry samples.

"full" launches bf16 SIZE^3 matrix products back to back, synchronising every few so the phase
ends on time; "duty" is busy like "full" for the first half of each PERIOD and sleeps the second
half, so NVML's utilisation (share of time a kernel ran) should read about 0.5 and power should
sit between idle and full. `busy_s` is the time this process spent in busy loops (measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

BATCH = 4  # matmuls between synchronisations (~6 ms at 8192^3 bf16 on an H200)


def _busy_until(deadline: float, a, b, torch) -> tuple[float, int]:
    """Matmuls until `deadline` (perf_counter seconds); returns (busy seconds, matmuls)."""
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() < deadline:
        for _ in range(BATCH):
            torch.matmul(a, b)
        torch.cuda.synchronize()
        n += BATCH
    return time.perf_counter() - t0, n


def _emit(phase: str, start_ns: int, busy_s: float, matmuls: int, size: int) -> None:
    line = {"phase": phase, "start_ns": start_ns, "end_ns": time.perf_counter_ns(),
            "busy_s": round(busy_s, 4), "matmuls": matmuls, "size": size}
    print(json.dumps(line), flush=True)


def run(idle_s: float, full_s: float, duty_s: float, period_s: float, size: int) -> None:
    import torch

    if not torch.cuda.is_available():
        print("load_pattern: torch sees no CUDA device", file=sys.stderr)
        raise SystemExit(3)
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    _busy_until(time.perf_counter() + 0.5, a, b, torch)  # cuBLAS warm-up, clocks up
    time.sleep(1.0)
    for phase, length in (("idle_before", idle_s), ("full", full_s), ("duty50", duty_s), ("idle_after", idle_s)):
        start_ns = time.perf_counter_ns()
        end = time.perf_counter() + length
        busy, n = 0.0, 0
        if phase == "full":
            busy, n = _busy_until(end, a, b, torch)
        elif phase == "duty50":
            while time.perf_counter() < end:
                t = time.perf_counter()
                db, dn = _busy_until(min(t + period_s / 2, end), a, b, torch)
                busy, n = busy + db, n + dn
                time.sleep(max(0.0, min(t + period_s, end) - time.perf_counter()))
        else:
            time.sleep(length)
        _emit(phase, start_ns, busy, n, size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idle", type=float, default=5.0, help="seconds of each idle phase")
    p.add_argument("--full", type=float, default=10.0, help="seconds of full load")
    p.add_argument("--duty", type=float, default=10.0, help="seconds of 50 %% duty cycle")
    p.add_argument("--period", type=float, default=0.2, help="duty-cycle period in seconds")
    p.add_argument("--size", type=int, default=8192, help="matrix side")
    a = p.parse_args(argv)
    run(a.idle, a.full, a.duty, a.period, a.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
