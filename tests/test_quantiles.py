"""The selection percentiles equal numpy's to the bit, on data shaped like latencies and on
adversarial shapes (ties, one crowded value, zeros, heavy tails, negatives)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler import quantiles as qt

QS = [50.0, 90.0, 95.0, 99.0, 99.9, 0.0, 100.0, 12.345]


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setattr(qt, "SELECT_MIN", 2)  # exercise the selection path on small arrays too


def _same(v):
    np.testing.assert_array_equal(qt.percentiles(v, QS), np.percentile(v, QS))


@pytest.mark.parametrize("make", [
    lambda r: r.gamma(16, 0.01 / 16, 200_000),
    lambda r: np.r_[r.gamma(16, 0.01 / 16, 100_000), r.uniform(2, 5, 30)],  # rare long stalls
    lambda r: np.round(r.exponential(0.01, 50_000), 4),  # many ties
    lambda r: np.r_[np.zeros(10_000), r.exponential(0.01, 10)],  # one crowded value
    lambda r: r.normal(0, 1, 20_000),  # negatives: the partition fallback
    lambda r: np.full(5, 0.25),
])
def test_equal_to_numpy(make):
    _same(make(np.random.default_rng(1)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False), min_size=2, max_size=300))
def test_equal_to_numpy_any_sample(values):
    _same(np.array(values))


@pytest.mark.parametrize("k", [1, 7, 500])
def test_placeholder_zeros_are_dropped(k):
    r = np.random.default_rng(k)
    real = np.r_[r.gamma(16, 0.01 / 16, 30_000), np.zeros(20)]  # real zero gaps stay in the sample
    with_placeholders = np.insert(real, r.integers(0, real.size, k), 0.0)
    np.testing.assert_array_equal(qt.percentiles(with_placeholders, QS, zeros_to_drop=k), np.percentile(real, QS))


def _same_ns(v_ns, k=0):
    real = np.sort(v_ns)[k:]
    np.testing.assert_array_equal(qt.percentiles(v_ns, QS, zeros_to_drop=k, unit=1e9), np.percentile(real / 1e9, QS))


@pytest.mark.parametrize("make", [
    lambda r: r.gamma(16, 1e7 / 16, 200_000).astype(np.int64),  # ns gaps around 10 ms
    lambda r: np.r_[r.gamma(16, 1e7 / 16, 100_000), r.uniform(2e9, 5e9, 30)].astype(np.int64),  # rare stalls
    lambda r: np.r_[r.gamma(16, 1e7 / 16, 100_000), np.full(50_000, 3_600 * 10**9)].astype(np.int64),  # a third far out
    lambda r: np.r_[np.zeros(10_000), r.integers(1, 10**6, 10)].astype(np.int64),  # one crowded value
    lambda r: (r.integers(0, 3, 50_000) * 10**6).astype(np.int64),  # three values only
    lambda r: np.r_[r.integers(0, 10**7, 5_000), [-5]].astype(np.int64),  # a negative: the partition fallback
])
def test_integer_nanoseconds_equal_numpy_of_seconds(make):
    v = make(np.random.default_rng(2))
    _same_ns(v)
    _same_ns(np.insert(v, 0, np.zeros(37, np.int64)), k=37)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**13), min_size=2, max_size=300))
def test_integer_nanoseconds_any_sample(values):
    _same_ns(np.array(values, dtype=np.int64))
