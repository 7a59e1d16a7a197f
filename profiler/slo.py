"""Service-level objectives: names, parsing, evaluation and formatting, in one place.

An SLO is `<metric>_<stat>=<limit>`, e.g. `ttft_p99=500ms`. The metric names are the points.csv
latency column prefixes and mean one thing everywhere:

- `ttft`, `tpot`, `e2e`: the per-request figures of `profiler.metrics`;
- `itl_token`: per-token ITL of a request, (last − first content) / (output tokens − 1);
- `itl`: the per-chunk ITL, gaps between consecutive content events.

A point meets an SLO when its statistic (points.csv `<metric>_<stat>_ms`) is ≤ the limit (`slo_met`).
A request meets it (goodput) when its own value is ≤ the limit; for `itl` a request's value is its
longest chunk gap, so a request is good only if no pause between its chunks exceeded the limit.
A request without a value (one output token: no ITL or TPOT) does not fail that SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiler.errors import UserError
from profiler.metrics import STATS
from profiler.spec import parse_duration

# Order matters for parsing: the longer name first, so "itl_token_p99" is not read as "itl".
METRICS = ("itl_token", "ttft", "itl", "tpot", "e2e")


@dataclass(frozen=True)
class Slo:
    metric: str
    stat: str
    limit_s: float

    @property
    def name(self) -> str:
        return f"{self.metric}_{self.stat}"

    @property
    def column(self) -> str:
        """The points.csv column this SLO reads, in milliseconds."""
        return f"{self.name}_ms"


def split_name(name: str) -> tuple[str, str]:
    """'itl_token_p99' -> ('itl_token', 'p99'); UserError for an unknown metric or statistic."""
    metric, _, stat = name.strip().lower().rpartition("_")
    if metric not in METRICS or stat not in STATS:
        raise UserError(f"invalid SLO {name!r}: use <metric>_<stat>=<time> with metric in "
                        f"{', '.join(sorted(METRICS))} and stat in {', '.join(STATS)}, e.g. ttft_p99=500ms")
    return metric, stat


def parse_slos(text: str | None) -> dict[str, float]:
    """'ttft_p99=500ms,tpot_p99=50ms' -> {'ttft_p99': 0.5, 'tpot_p99': 0.05} (seconds; bare numbers are ms)."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise UserError(f"invalid SLO {part!r}: use <metric>_<stat>=<time>, e.g. ttft_p99=500ms")
        metric, stat = split_name(name)
        seconds = parse_duration(value, default_unit="ms")
        if seconds <= 0:
            raise UserError(f"invalid SLO {part!r}: the limit must be positive")
        out[f"{metric}_{stat}"] = seconds
    return out


def slo_list(slos: dict[str, float]) -> list[Slo]:
    return [Slo(*split_name(name), float(limit)) for name, limit in slos.items()]


def evaluate_row(row: dict, slos: dict[str, float]) -> tuple[bool, list[str]]:
    """(every SLO met, the failed ones as 'name=VALUEms>LIMITms') for one points.csv row. NaN fails."""
    failed = []
    for s in slo_list(slos):
        value_ms = row.get(s.column, math.nan)
        if not (value_ms <= s.limit_s * 1e3):
            failed.append(f"{s.name}={value_ms:.1f}ms>{s.limit_s * 1e3:g}ms")
    return not failed, failed


def evaluate_frame(points: pd.DataFrame, slos: dict[str, float]) -> pd.Series:
    """Per points.csv row: True where every SLO holds (NaN fails). UserError when a column is absent."""
    met = pd.Series(True, index=points.index)
    for s in slo_list(slos):
        if s.column not in points.columns:
            avail = sorted(c[:-3] for c in points.columns if c.endswith("_ms") and "_p" in c)
            raise UserError(f"SLO {s.name!r} needs column {s.column} in points.csv; available: {', '.join(avail)}")
        values = pd.to_numeric(points[s.column], errors="coerce")
        met &= values.le(s.limit_s * 1e3).fillna(False)
    return met


def requests_meeting(per_request: dict[str, np.ndarray], slos: dict[str, float]) -> np.ndarray | None:
    """Per request: True when its value of every SLO's metric is within the limit (NaN passes).
    `per_request` maps each metric name to one value per request (for `itl`: the longest chunk gap).
    None when there is no SLO."""
    good = None
    for s in slo_list(slos):
        v = np.asarray(per_request[s.metric], dtype=float)
        ok = np.isnan(v) | (v <= s.limit_s)
        good = ok if good is None else good & ok
    return good


def format_slos(slos: dict[str, float], sep: str = " ≤ ") -> str:
    """{'ttft_p99': 0.5} -> 'ttft_p99 ≤ 500 ms' (seconds when ≥ 10 s)."""
    parts = []
    for name, limit in (slos or {}).items():
        ms = float(limit) * 1e3
        parts.append(f"{name}{sep}{ms:g} ms" if ms < 1e4 else f"{name}{sep}{float(limit):g} s")
    return ", ".join(parts)
