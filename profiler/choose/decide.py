"""A weighted decision matrix: normalisation, scores, ranking and how fragile the winner is.

Normalisation (min–max over the candidates compared, fact sheet §7): for an objective to maximise
r = (x − min)/(max − min), to minimise r = (max − x)/(max − min); every candidate equal → r = 1
for all (the objective cannot separate them); a missing value → r = 0 (worst).
Score S = Σ_k w_k·r_k with the weights rescaled to sum to 1. Ranking: S descending, ties by order.

Sensitivity of the winner W to weight k: w_k moves and the others keep their proportions, so
S_X(w_k) = w_k·r_{X,k} + (1 − w_k)·R_{−k}(X), R_{−k}(X) = Σ_{j≠k} w_j·r_{X,j}/(1 − w_k). W and another
candidate X tie at w_k* = D/(D − d) with d = r_{W,k} − r_{X,k}, D = R_{−k}(W) − R_{−k}(X), when
w_k* ∈ [0, 1]. The smallest |w_k* − w_k| over every X and k is the smallest weight change that
changes the winner (the weight moved alone, the rest rescaled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from profiler.choose.pareto import MAX


def normalise(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """The module docstring's min–max rule, column by column."""
    x = np.asarray(values, float)
    r = np.zeros_like(x)
    for k, d in enumerate(directions):
        col = x[:, k]
        ok = np.isfinite(col)
        if not ok.any():
            continue
        lo, hi = col[ok].min(), col[ok].max()
        if hi == lo:
            r[ok, k] = 1.0
            continue
        r[ok, k] = (col[ok] - lo) / (hi - lo) if d == MAX else (hi - col[ok]) / (hi - lo)
    return r


def unit_weights(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, float)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be >= 0 and not all 0")
    return w / w.sum()


def scores(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.asarray(r, float) @ np.asarray(w, float)


def ranking(s: np.ndarray) -> list[int]:
    """Candidate indices, best first (a stable sort: ties keep their order)."""
    return [int(i) for i in np.argsort(-np.asarray(s), kind="stable")]


@dataclass(frozen=True)
class Flip:
    """Moving weight `objective` from `weight` to `at` makes `new_winner` tie the winner."""

    objective: int
    weight: float
    at: float
    new_winner: int

    @property
    def change(self) -> float:
        return abs(self.at - self.weight)


def flips(r: np.ndarray, w: np.ndarray) -> list[Flip]:
    """Per objective, the nearest weight at which another candidate ties the winner (none when no
    weight in [0, 1] changes the winner), nearest first."""
    r, w = np.asarray(r, float), np.asarray(w, float)
    win = ranking(scores(r, w))[0]
    out = []
    for k in range(r.shape[1]):
        best: Flip | None = None
        for x in range(r.shape[0]):
            at = _tie(r[win], r[x], w, k) if x != win else math.nan
            if math.isfinite(at) and (best is None or abs(at - w[k]) < best.change):
                best = Flip(k, float(w[k]), at, x)
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda f: f.change)


def _tie(rw: np.ndarray, rx: np.ndarray, w: np.ndarray, k: int) -> float:
    """w_k* where S_W = S_X (module docstring), NaN when outside [0, 1] or never."""
    rest = 1.0 - w[k]
    if rest <= 0:  # all the weight on k: the others' shares are undefined, use equal shares
        others = np.ones_like(w)
        others[k] = 0.0
        others /= max(others.sum(), 1.0)
    else:
        others = w.copy()
        others[k] = 0.0
        others /= rest
    d = rw[k] - rx[k]
    big_d = float(others @ rw - others @ rx)
    if d == big_d:
        return math.nan  # the two lines are parallel: W stays ahead (or tied) at every w_k
    at = big_d / (big_d - d)
    return at if 0.0 <= at <= 1.0 else math.nan


def rank_acceptability(r: np.ndarray, draws: int = 10000, seed: int = 0) -> np.ndarray:
    """Share of Dirichlet(1, …, 1) weight draws each candidate wins (SMAA, Lahdelma et al. 1998)."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(r.shape[1]), size=draws)
    s = w @ np.asarray(r, float).T
    wins = np.bincount(np.argmax(s, axis=1), minlength=r.shape[0])
    return wins / draws
