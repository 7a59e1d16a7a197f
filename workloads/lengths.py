"""Token-length distributions for prompts and outputs.

Accepted text forms (``parse_length``)::

    128                 fixed: every sample is 128
    uniform:64,256      integers uniform on [64, 256], both ends included
    normal:128,32       round(N(mean=128, std=32)), clipped to >= 1
    lognormal:128,0.5   round(LogNormal) with MEAN 128 and shape sigma 0.5, clipped to >= 1

Lognormal is parameterised by its mean (not its median) so that ``"128"``, ``"normal:128,32"``
and ``"lognormal:128,0.5"`` all offer the same average load and sweeps stay comparable:
``mu = ln(mean) - sigma**2 / 2`` (so the median is ``exp(mu) = mean * exp(-sigma**2 / 2)``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from workloads.errors import WorkloadError

ACCEPTED_FORMS = "N, uniform:LO,HI, normal:MEAN,STD or lognormal:MEAN,SIGMA (e.g. 128, uniform:64,256)"

_KINDS = ("fixed", "uniform", "normal", "lognormal")
_NUM = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"


def _phi(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: float) -> float:
    """Standard normal CDF: 0.5 * (1 + erf(x / sqrt 2))."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A distribution of token counts; build it with ``parse_length``.

    ``kind`` is one of ``fixed``, ``uniform``, ``normal``, ``lognormal``; ``a`` and ``b`` are the
    two numbers of the text form (``b`` is unused for ``fixed``).
    """

    kind: str
    a: float
    b: float = 0.0

    def sample(self, n: int, rng: np.random.Generator) -> list[int]:
        """Draw ``n`` integer lengths, each >= 1, from ``rng``."""
        if n < 0:
            raise WorkloadError(f"n must be >= 0, got {n}")
        if self.kind == "fixed":
            return [int(self.a)] * n
        if self.kind == "uniform":
            x = rng.integers(int(self.a), int(self.b) + 1, size=n)
            return [int(v) for v in x]
        if self.kind == "normal":
            x = rng.normal(self.a, self.b, size=n)
        else:  # lognormal, mean-parameterised
            x = rng.lognormal(self._mu(), self.b, size=n)
        return [int(v) for v in np.maximum(np.rint(x), 1)]

    def _mu(self) -> float:
        return math.log(self.a) - self.b * self.b / 2.0

    @property
    def mean(self) -> float:
        """Expected value of ``max(1, X)`` for the continuous X before rounding.

        fixed: a; uniform: (lo + hi) / 2;
        normal: ``Phi(z) + m * (1 - Phi(z)) + s * phi(z)`` with ``z = (1 - m) / s``;
        lognormal: ``Phi(-mu/s) + mean * Phi((mu + s^2) / s)``.
        Rounding to the nearest integer adds no bias beyond ~1e-3 tokens for smooth densities.
        """
        if self.kind == "fixed":
            return float(self.a)
        if self.kind == "uniform":
            return (self.a + self.b) / 2.0
        if self.kind == "normal":
            m, s = self.a, self.b
            if s == 0:
                return max(1.0, m)
            z = (1.0 - m) / s
            return _cdf(z) + m * (1.0 - _cdf(z)) + s * _phi(z)
        s = self.b
        if s == 0:
            return max(1.0, self.a)
        mu = self._mu()
        return _cdf(-mu / s) + self.a * _cdf((mu + s * s) / s)

    def describe(self) -> str:
        """Canonical text form; ``parse_length(d.describe()) == d``."""
        if self.kind == "fixed":
            return _fmt(self.a)
        return f"{self.kind}:{_fmt(self.a)},{_fmt(self.b)}"

    def __str__(self) -> str:
        return self.describe()


def _bad(text: object, why: str = "") -> WorkloadError:
    extra = f" ({why})" if why else ""
    return WorkloadError(f"bad length {text!r}{extra}: expected {ACCEPTED_FORMS}")


def parse_length(text: str | int) -> LengthDist:
    """Parse ``"128"``, ``"uniform:64,256"``, ``"normal:128,32"`` or ``"lognormal:128,0.5"``.

    Raises ``WorkloadError`` (a ValueError; one line, naming the accepted forms) on anything
    else, including lengths < 1, lo > hi, and negative std or sigma.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise _bad(text)
    s = str(text).strip().lower()
    m = re.fullmatch(r"(?:fixed:)?\s*(\d+)\s*", s)
    if m:
        v = int(m.group(1))
        if v < 1:
            raise _bad(text, "length must be >= 1")
        return LengthDist("fixed", float(v))
    m = re.fullmatch(r"([a-z]+)\s*:" + _NUM + "," + _NUM, s)
    if not m or m.group(1) not in _KINDS[1:]:
        raise _bad(text)
    kind, a, b = m.group(1), float(m.group(2)), float(m.group(3))
    if not (math.isfinite(a) and math.isfinite(b)):
        raise _bad(text, "numbers must be finite")
    if kind == "uniform":
        if not (a.is_integer() and b.is_integer()) or a < 1 or a > b:
            raise _bad(text, "uniform needs integers 1 <= LO <= HI")
    elif kind == "normal":
        if a < 1 or b < 0:
            raise _bad(text, "normal needs MEAN >= 1 and STD >= 0")
    elif a < 1 or b < 0:
        raise _bad(text, "lognormal needs MEAN >= 1 and SIGMA >= 0")
    return LengthDist(kind, a, b)
