"""Reading a run folder for the cost commands, and re-evaluating SLOs from points.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profiler.errors import UserError
from profiler.runfolder import POINTS_CSV
from profiler.runread import numeric, read_manifest, read_points_csv
from profiler.slo import evaluate_frame


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """(points.csv, manifest.json) of a run folder; UserError (one line) when unusable."""
    d = Path(run_dir)
    manifest = read_manifest(d)
    if not (d / POINTS_CSV).is_file():
        raise UserError(f"no points.csv in {d} (run `inferprof report {d}` to rebuild it)")
    return read_points_csv(d / POINTS_CSV), manifest


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
        g = numeric(points_df, "gpu_count")
        if g.notna().any() and g.max() > 0:
            return float(g.max())
    gpus = manifest.get("gpus") or []
    return float(len(gpus)) if gpus else None


def run_model(manifest: dict) -> str | None:
    """The served model (manifest endpoint.model)."""
    ep = manifest.get("endpoint") or {}
    m = ep.get("model")
    return str(m) if m else None


def apply_slos(points_df: pd.DataFrame, slos: dict[str, float]) -> pd.DataFrame:
    """Copy with slo_met recomputed from the percentile columns for these SLOs."""
    df = points_df.copy()
    df["slo_met"] = evaluate_frame(df, slos)
    return df
