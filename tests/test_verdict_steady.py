"""The verdict rule (profiler/verdict.py) and the steady-state rules (profiler/steady.py)."""

import math

import numpy as np
import pytest

from profiler.repeats import mean_ci as repeat_mean_ci
from profiler.steady import (
    batch_means,
    binned_rate,
    converged,
    mean_ci,
    mser5_cut,
    oversaturated,
    rising,
    warmup_requests,
)
from profiler.verdict import (
    FAIL,
    PASS,
    UNRESOLVED,
    combine,
    count_violations,
    share_interval,
    share_target,
    share_verdict,
    slo_verdict,
)


def test_zero_violations_pass_at_376_for_p99():
    # statistics.md §1: mixture a=0.5, a+b=1/p0: 0 violations pass at n=376 (one-shot CP: 299)
    assert share_verdict("ttft_p99", 0, 375, 0.01).verdict == UNRESOLVED
    assert share_verdict("ttft_p99", 0, 376, 0.01).verdict == PASS


def test_half_percent_violations_stay_unresolved_at_1000():
    v = share_verdict("ttft_p99", 5, 1000, 0.01)
    assert v.verdict == UNRESOLVED and v.lo < 0.01 < v.hi


def test_clear_violation_fails_quickly():
    assert share_verdict("ttft_p99", 5, 5, 0.01).verdict == FAIL
    assert share_verdict("ttft_p99", 30, 200, 0.01).verdict == FAIL


def test_interval_contains_the_estimate_and_narrows():
    lo1, hi1 = share_interval(10, 1000, 0.01)
    lo2, hi2 = share_interval(100, 10000, 0.01)
    assert lo1 < 0.01 < hi1 and lo2 < 0.01 < hi2
    assert hi2 - lo2 < hi1 - lo1


def test_optional_stopping_false_pass_stays_near_alpha():
    # true violation share exactly 1 %: looked at every 50 requests up to 5000, a PASS is wrong
    rng = np.random.default_rng(0)
    wrong = 0
    sims = 300
    for _ in range(sims):
        x = np.cumsum(rng.random(5000) < 0.01)
        for n in range(50, 5001, 50):
            if share_verdict("p", int(x[n - 1]), n, 0.01).verdict == PASS:
                wrong += 1
                break
    assert wrong / sims <= 0.06


def test_failed_requests_count_as_violations_and_nan_is_undecided():
    values = np.array([0.1, 0.2, np.nan, 0.9, 0.1])
    failed = np.array([False, False, False, False, True])
    assert count_violations(values, failed, 0.5) == (2, 4)


def test_share_targets():
    assert share_target("p99") == 0.01 and share_target("p999") == 0.001
    assert share_target("p50") == 0.5 and share_target("p90") == 0.1


def test_mean_slo_uses_a_ci():
    rng = np.random.default_rng(1)
    values = rng.normal(0.100, 0.01, 400)
    assert slo_verdict("e2e_mean", "mean", 0.120, values, np.zeros(400, bool)).verdict == PASS
    assert slo_verdict("e2e_mean", "mean", 0.080, values, np.zeros(400, bool)).verdict == FAIL
    assert slo_verdict("e2e_mean", "mean", float(values.mean()), values, np.zeros(400, bool)).verdict == UNRESOLVED
    assert slo_verdict("e2e_mean", "mean", 0.5, values[:10], np.zeros(10, bool)).verdict == UNRESOLVED


def test_p50_slo_counts_violations():
    values = np.r_[np.full(300, 0.1), np.full(100, 0.9)]
    assert slo_verdict("ttft_p50", "p50", 0.5, values, np.zeros(400, bool)).verdict == PASS
    assert slo_verdict("ttft_p50", "p50", 0.05, values, np.zeros(400, bool)).verdict == FAIL


def test_combine():
    def v(x):
        return share_verdict("s", *x, 0.01)
    assert combine([v((0, 400)), v((0, 400))]) == PASS
    assert combine([v((0, 400)), v((10, 20))]) == FAIL
    assert combine([v((0, 400)), v((5, 1000))]) == UNRESOLVED


def test_mser5_worked_example():
    # statistics.md §3: Z = [600, 266, 203, 195, 208, 199, 204, 196] → d* = 2 → drop 10
    z = [600, 266, 203, 195, 208, 199, 204, 196]
    assert mser5_cut(np.repeat(z, 5).astype(float)) == 10


def test_mser5_finds_a_warmup_in_noise_and_none_in_a_flat_series():
    rng = np.random.default_rng(2)
    flat = rng.normal(100, 5, 500)
    warm = np.r_[np.linspace(400, 110, 60), rng.normal(100, 5, 440)]
    assert mser5_cut(flat) <= 25
    assert 40 <= mser5_cut(warm) <= 90
    assert mser5_cut(np.arange(8.0)) == 0


def test_batch_means_ci_matches_the_worked_example():
    # k = 20 batches with S_b = 12 around 210: hw = 2.093·12/√20 = 5.6
    z = 210 + 12 * np.r_[np.ones(10), -np.ones(10)] * math.sqrt(20 / 19) * math.sqrt(19 / 20)
    z = (z - z.mean()) / z.std(ddof=1) * 12 + 210
    mean, hw = mean_ci(np.repeat(z, 3), batches=20)
    assert mean == pytest.approx(210) and hw == pytest.approx(2.093 * 12 / math.sqrt(20), rel=1e-3)
    assert batch_means(np.arange(10.0), 3).tolist() == [2.0, 5.0, 8.0]


def test_convergence_rule():
    rng = np.random.default_rng(4)
    steady = rng.normal(1000, 20, 200)
    noisy = rng.normal(1000, 400, 200)
    assert converged(steady, 0.05)
    assert not converged(noisy, 0.05)
    assert not converged(steady[:5], 0.05)  # too few values to say


def test_rising_and_oversaturated():
    rng = np.random.default_rng(5)
    flat = rng.normal(0.2, 0.02, 300)
    ramp = np.linspace(0.2, 2.0, 300) + rng.normal(0, 0.02, 300)
    mild = np.linspace(0.2, 0.25, 300) + rng.normal(0, 0.002, 300)
    assert not rising(flat) and not oversaturated(flat)
    assert rising(ramp) and oversaturated(ramp)
    assert rising(mild) and not oversaturated(mild)  # rising, but not a growing queue


def test_binned_rate():
    t = np.array([0, 1, 2, 3]) * 1_000_000_000
    rates = binned_rate(t, np.array([10, 10, 10, 10]), 0, 4_000_000_000, 2)
    assert rates.tolist() == [10.0, 10.0]  # 20 tokens in each 2 s bin


def test_warmup_requests_in_send_order_skip_failed():
    rng = np.random.default_rng(6)
    ttft = np.r_[np.linspace(2.0, 0.3, 40), rng.normal(0.2, 0.01, 360)]
    send = np.arange(400)[::-1].copy()  # rows in reverse send order
    ttft_rows = ttft[::-1].copy()
    k = warmup_requests(send, ttft_rows)
    assert 30 <= k <= 60
    ttft_rows[-1] = np.nan  # the first request sent failed: it has no TTFT, the cut still ends the ramp
    assert 30 <= warmup_requests(send, ttft_rows) <= 60
    assert warmup_requests(np.arange(8), np.ones(8)) == 0


def test_repeat_interval_matches_the_aiperf_example():
    # statistics.md §4: [150, 152, 148, 155, 151] → 151.2 ± 2.776·2.588/√5 = [148.0, 154.4]
    mean, hw = repeat_mean_ci(np.array([150, 152, 148, 155, 151.0]))
    assert mean == pytest.approx(151.2) and mean - hw == pytest.approx(148.0, abs=0.05)
    assert math.isnan(repeat_mean_ci(np.array([1.0]))[1])


def _ramping_point(mode: str):
    """200 one-token requests sent 10 ms apart whose TTFT ramps from 5 ms to 50 ms."""
    import pandas as pd

    from profiler.pointview import REQUEST_ARRAYS, PointView

    n = 200
    send = np.arange(n, dtype=np.int64) * 10_000_000
    first = send + np.linspace(5e6, 50e6, n).astype(np.int64)
    req = pd.DataFrame({"request": np.arange(n), "error": [""] * n, "send_ns": send, "end_ns": first + 1000,
                        "scheduled_ns": send, "first_content_ns": first, "last_content_ns": first,
                        **{c: np.ones(n, dtype=np.int64) for c in REQUEST_ARRAYS}})
    chunks = pd.DataFrame({"request": np.arange(n), "t_ns": first, "tokens": np.ones(n, dtype=np.int64)})
    return PointView.build({"point": 0, "mode": mode, "load": 1.0}, req, chunks, 0.0)


def test_a_closed_loop_is_never_judged_over_saturated():
    # Its queue is bounded by the concurrency: a rising TTFT fails the point only on an open loop.
    from profiler.capacity import assess

    assert assess(_ramping_point("rate"), {}, 0.1).oversaturated
    closed = assess(_ramping_point("concurrency"), {}, 0.1)
    assert not closed.oversaturated and closed.verdict != FAIL
