"""The answers a report leads with, computed from points.csv and the manifest only (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from profiler.report.plots import HostedLine
from profiler.runread import flag, numeric
from profiler.slo import format_slos

MAX_HOSTED_LINES = 4


def _finite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class PointRef:
    point: int
    mode: str
    load: float
    output_tok_per_s: float
    usd_per_1m_output: float
    j_per_output_token: float
    trusted: bool
    trust_reason: str


@dataclass(frozen=True)
class Headline:
    max_throughput: PointRef | None
    slo_text: str  # "" when no SLO was given
    best_slo: PointRef | None  # highest load meeting every SLO
    hosted: list[HostedLine] = field(default_factory=list)
    hosted_as_of: str = ""


def _ref(points: pd.DataFrame, i) -> PointRef:
    return PointRef(point=int(points.at[i, "point"]), mode=str(points.at[i, "mode"]),
                    load=float(points.at[i, "load"]),
                    output_tok_per_s=float(numeric(points, "output_tok_per_s").at[i]),
                    usd_per_1m_output=float(numeric(points, "usd_per_1m_output").at[i]),
                    j_per_output_token=float(numeric(points, "j_per_output_token").at[i]),
                    trusted=bool(flag(points, "trusted", True).at[i]),
                    trust_reason=str(points.at[i, "trust_reason"]) if "trust_reason" in points.columns
                    and pd.notna(points.at[i, "trust_reason"]) else "")


def headline(points: pd.DataFrame, manifest: dict, hosted: list[HostedLine] | None = None,
             hosted_as_of: str = "") -> Headline:
    """Max output throughput and where; the highest load meeting the SLOs (and its cost)."""
    if not len(points):
        return Headline(None, format_slos(manifest.get("slos") or {}), None, hosted or [], hosted_as_of)
    thr = numeric(points, "output_tok_per_s")
    best = _ref(points, thr.idxmax()) if thr.notna().any() else None
    slos = manifest.get("slos") or {}
    best_slo = None
    if slos and "slo_met" in points.columns:
        met = points[flag(points, "slo_met", False)]
        if len(met):
            best_slo = _ref(points, numeric(met, "load").idxmax())
    return Headline(best, format_slos(slos), best_slo, hosted or [], hosted_as_of)


def hosted_lines(manifest: dict) -> tuple[list[HostedLine], str]:
    """Hosted API list prices for the run's model (same open-weight model, via the cost
    package's aliases), cheapest first, and the price snapshot's date. Empty when unknown."""
    model = str((manifest.get("endpoint") or {}).get("model") or "")
    if not model:
        return [], ""
    try:
        from profiler.cost.hosted import find_hosted, load_snapshot
    except ImportError:
        return [], ""
    try:
        found = find_hosted(model)
        snap = load_snapshot()
    except (ValueError, OSError, KeyError):
        return [], ""
    found = sorted(found, key=lambda h: h.output)[:MAX_HOSTED_LINES]
    as_of = " ".join(x for x in (str(snap.get("generated_at") or ""),
                                 f"litellm {snap['litellm_version']}" if snap.get("litellm_version") else "") if x)
    return [HostedLine(f"{h.key} (${h.output:g}/1M out)", float(h.output)) for h in found], as_of
