"""Per-request samples and the bootstrap engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report_fixture import build_run

from profiler import runfolder as rf
from profiler.report import stats as st
from profiler.report.samples import run_samples
from profiler.runread import load_run


@pytest.mark.parametrize("stat", ["mean", "p50", "p90", "p99", "p999"])
def test_weighted_stat_equals_numpy_on_the_expanded_sample(stat):
    rng = np.random.default_rng(3)
    v = np.sort(rng.lognormal(size=41))
    counts = st.resample_counts(41, 64, rng)
    got = st.weighted_stat(v, counts, stat)
    q = {"p50": 50, "p90": 90, "p99": 99, "p999": 99.9}
    want = [np.mean(np.repeat(v, c)) if stat == "mean" else np.percentile(np.repeat(v, c), q[stat]) for c in counts]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_resample_counts_sum_to_n():
    c = st.resample_counts(17, 100, np.random.default_rng(0))
    assert c.shape == (100, 17) and (c.sum(axis=1) == 17).all()


def test_samples_reproduce_points_csv(tmp_path):
    run = load_run(build_run(tmp_path))
    samples = run_samples(run)
    for _, row in run.points.iterrows():
        s = samples[int(row["point"])]
        for base in ("ttft", "tpot", "e2e", "itl_token"):
            v = s.per_request[base]
            assert np.percentile(v[~np.isnan(v)], 99) * 1e3 == pytest.approx(row[f"{base}_p99_ms"], rel=1e-5)
        assert np.percentile(s.itl_values, 50) * 1e3 == pytest.approx(row["itl_p50_ms"], rel=1e-5)
        assert s.itl_groups == row["ok"]


def test_bootstrap_is_seeded_and_centred(tmp_path):
    run = load_run(build_run(tmp_path, loads=(2,)))
    s = run_samples(run)[0]
    a = st.bootstrap_metric(s, "ttft_p50", 500, np.random.default_rng(7))
    b = st.bootstrap_metric(s, "ttft_p50", 500, np.random.default_rng(7))
    assert np.array_equal(a.replicates, b.replicates)
    assert a.value == pytest.approx(run.points["ttft_p50_ms"].iloc[0], rel=1e-5)
    assert np.quantile(a.replicates, 0.025) < a.value < np.quantile(a.replicates, 0.975)
    thr = st.bootstrap_metric(s, "output_tok_per_s", 500, np.random.default_rng(7), value=123.0)
    assert thr.value == 123.0 and np.median(thr.replicates) == pytest.approx(123.0, rel=0.05)


def test_verdict_only_when_interval_excludes_zero():
    assert st.verdict(0.1, 0.5, lower_better=True) == "B slower"
    assert st.verdict(-0.5, -0.1, lower_better=True) == "B faster"
    assert st.verdict(-0.5, -0.1, lower_better=False) == "B slower"
    assert st.verdict(-0.1, 0.1, lower_better=True) == st.NO_DIFFERENCE
    assert st.verdict(float("nan"), 0.1, lower_better=True) == st.NOT_MEASURED


def test_tail_rule_and_min_effect():
    assert st.tail_samples_needed("ttft_p50") == 1
    assert st.tail_samples_needed("ttft_p99") == 500
    reps = np.full(100, 1.0)
    a = st.Estimate(10.0, reps * 10.0, 1000)
    b = st.Estimate(10.2, reps * 10.2, 1000)
    d = st.difference(a, b, 0.95, True, 1, min_effect=0.05)
    assert d.verdict == st.NO_DIFFERENCE and "5%" in d.note
    assert st.difference(a, b, 0.95, True, 1, min_effect=0.0).verdict == "B slower"
    assert st.difference(a, b, 0.95, True, 2000, min_effect=0.0).verdict == st.NO_DIFFERENCE


def test_missing_chunks_gives_not_measured_itl(tmp_path):
    run_dir = build_run(tmp_path, loads=(1,))
    (run_dir / rf.CHUNKS).unlink()
    s = run_samples(load_run(run_dir))[0]
    e = st.bootstrap_metric(s, "itl_p50", 200, np.random.default_rng(0))
    assert np.isnan(e.value)
    assert isinstance(run_samples(load_run(run_dir)), dict) and len(pd.read_csv(run_dir / rf.POINTS_CSV)) == 1


@pytest.mark.parametrize("first_band", [1, 256])
@pytest.mark.parametrize("stat", ["mean", "p50", "p90", "p99", "p999"])
def test_grouped_stat_equals_numpy_on_the_expanded_cluster_sample(stat, first_band, monkeypatch):
    """Clusters of unequal size with tied values; a first band of 1 forces every widening step."""
    from profiler.report import wquantile

    monkeypatch.setattr(wquantile, "FIRST_HALF_BAND", first_band)
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 30, 60)
    vals = np.round(rng.gamma(4.0, size=sizes.sum()), 1)  # rounding makes ties across clusters
    group = np.repeat(np.arange(sizes.size), sizes)
    order = np.argsort(vals, kind="stable")
    counts = st.resample_counts(sizes.size, 50, rng)
    got = wquantile.grouped_stat(vals[order], group[order], counts, stat)
    q = {"p50": 50, "p90": 90, "p99": 99, "p999": 99.9}
    want = []
    for c in counts:
        sample = np.repeat(vals, c[group])
        want.append(np.mean(sample) if stat == "mean" else np.percentile(sample, q[stat]))
    assert np.allclose(got, want, rtol=1e-12, atol=0) if stat == "mean" else np.array_equal(got, want)


def test_repeat_difference_is_welchs_t_across_repeats():
    from profiler.report.stats import repeat_difference

    d = repeat_difference(np.array([10.0, 12.0]), np.array([20.0, 22.0]), 0.95, lower_better=True)
    half = 4.302652729911275 * np.sqrt(2.0)  # t(0.975, ν = 2) · √(1 + 1)
    assert (d.a, d.b, d.diff) == (11.0, 21.0, 10.0)
    assert d.ci_lo == pytest.approx(10 - half) and d.ci_hi == pytest.approx(10 + half)
    assert d.verdict == "B slower" and "Welch" in d.note
    same = repeat_difference(np.array([10.0, 12.0, 11.0]), np.array([10.5, 11.5, 12.5]), 0.95, True)
    assert same.verdict == "no significant difference"
    assert repeat_difference(np.array([1.0]), np.array([2.0, 3.0]), 0.95, True).verdict == "not measured"
