"""The bounded loop-lag record: exact percentiles (as np.percentile), merging, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from backends.laghist import LIMIT_US, LagHistogram


def _hist(values) -> LagHistogram:
    h = LagHistogram()
    for v in values:
        h.append(int(v))
    return h


@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 99.9, 100])
def test_percentile_equals_numpy(q):
    rng = np.random.default_rng(1)
    values = np.r_[rng.integers(0, 3000, 5000), rng.integers(LIMIT_US, 10 * LIMIT_US, 7)]  # a few past the table
    assert _hist(values).percentile(q) == np.percentile(values, q)
    small = [5, 5, 7]
    assert _hist(small).percentile(q) == np.percentile(small, q)


def test_merge_max_len_and_pickle():
    rng = np.random.default_rng(2)
    a_vals, b_vals = rng.integers(0, 500, 1000), np.r_[rng.integers(0, 800, 300), 2 * LIMIT_US]
    a, b = _hist(a_vals), _hist(b_vals)
    a.extend(pickle.loads(pickle.dumps(b)))  # as the worker's result reaches the sweep
    both = np.r_[a_vals, b_vals]
    assert len(a) == both.size and a.max() == both.max()
    assert a.percentile(99) == np.percentile(both, 99)
    assert list(a) == sorted(both.tolist())
    assert _hist([3, 1]).max() == 3


def test_memory_does_not_grow_with_samples():
    h = _hist(range(0, 3 * LIMIT_US, 7))
    size = len(pickle.dumps(h))
    for v in range(0, LIMIT_US, 3):
        h.append(v)
    assert len(pickle.dumps(h)) <= size + 64  # counts, not samples (the large values were kept before)
