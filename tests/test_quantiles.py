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
