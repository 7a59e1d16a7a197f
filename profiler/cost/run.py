"""Reading a run folder for the cost commands, and re-evaluating SLOs from points.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """(points.csv as a DataFrame, manifest.json as a dict). ValueError (one line) if missing."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ValueError(f"run folder not found: {d}")
    pts = d / "points.csv"
    if not pts.is_file():
        raise ValueError(f"no points.csv in {d} (run `inferprof report {d}` to rebuild it)")
    try:
        df = pd.read_csv(pts)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{pts}: unreadable CSV ({str(e).splitlines()[0]})") from None
    manifest: dict = {}
    mf = d / "manifest.json"
    if mf.is_file():
        try:
            manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{mf}: invalid JSON ({e.msg} at line {e.lineno})") from None
    return df, manifest


def detected_gpu(manifest: dict, points_df: pd.DataFrame | None = None) -> str | None:
    """GPU name from manifest["gpus"][0]["name"], else the first gpu_name in points.csv."""
    gpus = manifest.get("gpus") or []
    if gpus and isinstance(gpus[0], dict) and gpus[0].get("name"):
        return str(gpus[0]["name"])
    if points_df is not None and "gpu_name" in points_df.columns:
        names = points_df["gpu_name"].dropna().astype(str)
        names = names[names.str.strip() != ""]
        if not names.empty:
            return names.iloc[0]
    return None


def gpu_count(manifest: dict, points_df: pd.DataFrame) -> float | None:
    """GPUs serving the endpoint: points.csv gpu_count (max), else len(manifest["gpus"])."""
    if "gpu_count" in points_df.columns:
        g = pd.to_numeric(points_df["gpu_count"], errors="coerce")
        if g.notna().any() and g.max() > 0:
            return float(g.max())
    gpus = manifest.get("gpus") or []
    return float(len(gpus)) if gpus else None


def run_model(manifest: dict) -> str | None:
    """The served model (manifest endpoint.model)."""
    ep = manifest.get("endpoint") or {}
    m = ep.get("model")
    return str(m) if m else None


def parse_slo_text(text: str) -> dict[str, float]:
    """Parse "ttft_p99=500ms,tpot_p99=50ms" with the sweep's own parser (profiler.spec)."""
    from profiler.spec import parse_slos  # lazy: the cost package must import without it

    return parse_slos(text)


def slo_column(name: str) -> str:
    """points.csv column of an SLO name: ttft_p99 -> ttft_p99_ms."""
    return f"{name}_ms"


def evaluate_slos(points_df: pd.DataFrame, slos: dict[str, float]) -> pd.Series:
    """True where every SLO holds: points[<name>_ms] <= seconds × 1000 (NaN fails).

    An SLO whose column is absent raises ValueError naming the columns available.
    """
    met = pd.Series(True, index=points_df.index)
    for name, seconds in slos.items():
        col = slo_column(name)
        if col not in points_df.columns:
            avail = sorted(c[:-3] for c in points_df.columns if c.endswith("_ms") and "_p" in c)
            raise ValueError(f"SLO {name!r} needs column {col} in points.csv; available: {', '.join(avail)}")
        vals = pd.to_numeric(points_df[col], errors="coerce")
        met &= vals.le(seconds * 1000.0).fillna(False)
    return met


def apply_slos(points_df: pd.DataFrame, slos: dict[str, float]) -> pd.DataFrame:
    """Copy with slo_met recomputed from the percentile columns for these SLOs."""
    df = points_df.copy()
    df["slo_met"] = evaluate_slos(df, slos)
    return df


def fmt_slos(slos: dict[str, float]) -> str:
    """{'ttft_p99': 0.5} -> 'ttft_p99<=500ms'."""
    parts = []
    for k, v in slos.items():
        ms = v * 1000
        parts.append(f"{k}<={ms:g}ms" if ms < 10000 or math.isnan(ms) else f"{k}<={v:g}s")
    return ", ".join(parts)
