"""The SLO search rule: which load to probe next, as a pure function of the probes already finished.

`next_probe(history, config)` returns the next load, or `Stop(reason, found, ...)`. It keeps no
state of its own, so a search interrupted after any probe resumes by replaying the finished probes
(search.json's `probes`, in order) through it: the same history gives the same next load.

The rule (concurrency: whole numbers; rate: 4 significant digits):
1. The start estimate (`start_load`) first, unless it is already probed or outside the bracket
   of step 2 (calibration points may have bounded the search before it).
2. Bracket: hi = the lowest load that did not pass (fail or unresolved: the answer must be a load
   known to pass); lo = the highest passing load below hi. Passing loads above hi are noted as
   non-monotone and ignored (the answer is conservative).
3. Every probe passed: double the highest (capped at the range top); stop when the top passed.
   No probe passed: halve the lowest (floored at the range bottom); stop when the bottom failed.
4. Otherwise: while 2·lo (rounded to the load grid) < hi keep doubling lo (a far-away failure, e.g. the calibration point
   at the range top, does not make the search bisect a wide bracket); then bisect, probing
   (lo + hi) / 2 until hi − lo ≤ max(unit, tolerance · lo), unit = 1 for concurrency and 0 for
   rate. The answer is lo.
5. Confirmation (as AIPerf's monotonic search and perf_analyzer's `--binary-search`: a verdict
   stands once two trials agree): when the bracket is within tolerance and its top `hi` has been
   probed once, `hi` is probed again before the search stops. A load counts as passing when any
   of its probes passed, so a failure that does not repeat moves the bracket up and the search
   goes on. A second failure (or unresolved) confirms `hi`. Near the knee a probe's verdict is
   close to a coin toss; without this one unlucky probe there ends the search below the knee.
6. At most `max_probes` probes; a load probed twice otherwise ends the search (rounding left no
   new load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from profiler.verdict import PASS


@dataclass(frozen=True)
class SearchConfig:
    lo: float  # the range (--range LO,HI)
    hi: float
    start: float  # first probe (start_load)
    tolerance: float = 0.05
    integer: bool = True  # concurrency
    max_probes: int = 15
    confirm: bool = True  # rule 5: the failure that ends the search is measured twice


@dataclass(frozen=True)
class Probe:
    """A finished probe: its load and its combined verdict (pass | fail | unresolved)."""

    load: float
    verdict: str


@dataclass(frozen=True)
class Stop:
    reason: str
    found: float | None  # the highest load known to pass (None: none passed)
    lo: float | None = None  # the final bracket
    hi: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def snap(load: float, config: SearchConfig) -> float:
    """Round to the load grid and clamp into the range."""
    if config.integer:
        load = float(math.floor(load + 1e-9))
    elif load > 0:
        load = float(f"{load:.4g}")
    return float(min(max(load, config.lo), config.hi))


def bracket(history: list[Probe]) -> tuple[float | None, float | None, tuple[str, ...]]:
    """(highest pass below the lowest non-pass, lowest non-pass, notes); a load passes when any of
    its probes passed."""
    good = sorted({p.load for p in history if p.verdict == PASS})
    bad = [p.load for p in history if p.verdict != PASS and p.load not in good]
    hi = min(bad) if bad else None
    below = [g for g in good if hi is None or g < hi]
    above = sorted(g for g in good if hi is not None and g > hi)
    notes = tuple(f"non-monotone: {g:g} passed above {hi:g}" for g in above)
    return (max(below) if below else None), hi, notes


def next_probe(history: list[Probe], config: SearchConfig) -> float | Stop:
    """The next load to probe, or why the search is over."""
    lo, hi, notes = bracket(history)
    start = snap(config.start, config)
    if all(p.load != start for p in history) and (lo is None or start > lo) and (hi is None or start < hi):
        return start
    if len(history) >= config.max_probes:
        return Stop(f"probe cap ({config.max_probes}) reached", lo, lo, hi, notes)
    if hi is None:
        if lo >= config.hi:
            return Stop("the top of the range passed", lo, lo, None, notes)
        nxt = snap(2 * lo, config)
    elif lo is None:
        if hi <= config.lo:
            return Stop("the bottom of the range did not pass", None, None, hi, notes)
        nxt = snap(hi / 2, config)
    else:
        unit = 1.0 if config.integer else 0.0
        if hi - lo <= max(unit, config.tolerance * lo):
            if config.confirm and sum(p.load == hi for p in history) == 1:
                return hi  # rule 5: the bound that ends the search, measured again
            return Stop(f"bracket within tolerance ({hi - lo:g} ≤ max({unit:g}, {config.tolerance:g}·{lo:g}))",
                        lo, lo, hi, notes)
        double = snap(2 * lo, config)  # compared once rounded: 2 × 53.14 rounds to a failed 106.3
        nxt = double if double < hi else snap((lo + hi) / 2, config)
    if any(p.load == nxt for p in history):
        return Stop(f"load {nxt:g} already probed", lo, lo, hi, notes)
    return nxt


def start_load(x_max: float, w0_s: float, config_lo: float, config_hi: float, integer: bool) -> float:
    """Where to start: half the knee that Little's law predicts.

    Closed loop (concurrency): N* = X_max · W0 (Little 1961; Denning & Buzen 1978), with X_max the
    completion rate (req/s) of a short probe at the top of the range and W0 the latency (s) of a
    lone request; start at N*/2. Open loop (rate): the knee is below X_max; start at X_max/2
    (`w0_s` unused). Falls back to the geometric middle of the range when a figure is missing.
    """
    if not (x_max > 0 and math.isfinite(x_max)):
        est = math.sqrt(config_lo * config_hi)
    elif integer:
        est = x_max * w0_s / 2 if w0_s > 0 and math.isfinite(w0_s) else math.sqrt(config_lo * config_hi)
    else:
        est = x_max / 2
    return min(max(est, config_lo), config_hi)
