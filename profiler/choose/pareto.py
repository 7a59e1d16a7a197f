"""The Pareto front over named objectives, each to be maximised or minimised.

a dominates b when a is at least as good as b on every objective and strictly better on one
(fact sheet §7). A candidate with a missing (NaN) objective is never on the front and dominates
nothing. O(k·n²) pairwise comparison: n is the number of runs compared, a handful.
"""

from __future__ import annotations

import numpy as np

MAX, MIN = "max", "min"
MISSING = -1  # in dominated_by: the candidate lacks an objective


def _as_min(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """The objective matrix turned so that lower is better in every column."""
    sign = np.array([-1.0 if d == MAX else 1.0 for d in directions])
    return np.asarray(values, float) * sign


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b (both lower-is-better rows, finite)."""
    return bool(np.all(a <= b) and np.any(a < b))


def dominated_by(values: np.ndarray, directions: list[str]) -> list[list[int]]:
    """For each candidate (row), the rows that dominate it; [] = on the front."""
    x = _as_min(values, directions)
    ok = np.isfinite(x).all(axis=1)
    out: list[list[int]] = []
    for i in range(len(x)):
        if not ok[i]:
            out.append([MISSING])
            continue
        out.append([j for j in range(len(x)) if j != i and ok[j] and dominates(x[j], x[i])])
    return out


def front(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """True for the candidates on the front."""
    return np.array([not d for d in dominated_by(values, directions)], bool)
