"""Reading a run folder back: the one points.csv reader, its column helpers, and the raw rows of
each point for the summaries and the reports. Writing is `profiler.runfolder`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiler import runfolder as rf
from profiler.errors import UserError

# points.csv columns that hold True/False ("" when not evaluated, e.g. slo_met without an SLO).
FLAG_COLUMNS = ("steady", "slo_met", "trusted")
_TRUE = ("true", "1", "1.0", "yes")
_FALSE = ("false", "0", "0.0", "no")


def numeric(df: pd.DataFrame, col: str) -> pd.Series:
    """A column as floats (unparseable → NaN); all-NaN when the column is absent."""
    if col in df.columns:
        return pd.to_numeric(df[col], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def parse_flag(v: object) -> object:
    """True/False from a bool or its text ("True", "1", "yes" …); NA when empty or unknown."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    text = str(v).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else pd.NA


def flag(df: pd.DataFrame, col: str, default: bool) -> pd.Series:
    """A True/False column as plain bools; empty or absent values read as `default`."""
    if col not in df.columns:
        return pd.Series(default, index=df.index, dtype=bool)
    return df[col].map(parse_flag).fillna(default).astype(bool)


def read_points_csv(path: str | Path) -> pd.DataFrame:
    """points.csv with real dtypes: numbers as floats/ints, FLAG_COLUMNS as nullable booleans
    (NA where the value was empty), text columns as strings."""
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable CSV ({str(e).splitlines()[0]})") from None
    for col in FLAG_COLUMNS:
        if col in df.columns:
            df[col] = df[col].map(parse_flag).astype("boolean")
    return df


@dataclass
class Run:
    """A run folder read for reporting: manifest, raw per-point facts and points.csv."""

    path: Path
    manifest: dict
    facts: list[dict]
    points: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def warmup_frac(self) -> float:
        return float((self.manifest.get("spec") or {}).get("warmup_frac", 0.1))


def read_manifest(run_dir: str | Path) -> dict:
    path = Path(run_dir) / rf.MANIFEST
    if not Path(run_dir).is_dir():
        raise UserError(f"run folder not found: {run_dir} is not a run folder (no such folder)")
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no {rf.MANIFEST})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None


def load_run(run_dir: str | Path) -> Run:
    """manifest + points.jsonl + points.csv (recomputed from the raw files when missing)."""
    path = Path(run_dir)
    manifest = read_manifest(path)
    facts = rf.read_point_facts(path)
    csv = path / rf.POINTS_CSV
    if csv.is_file() and csv.stat().st_size:
        points = read_points_csv(csv)
    else:
        from profiler.points import summarize_run

        points = summarize_run(path)
    return Run(path=path, manifest=manifest, facts=facts, points=points)


def point_rows(run_dir: str | Path, facts: list[dict]) -> Iterator[tuple[dict, pd.DataFrame, pd.DataFrame]]:
    """(facts, requests rows, content-chunk rows) of each point, in the order of `facts`."""
    req = rf.read_table(run_dir, rf.REQUESTS)
    chunks = rf.read_content_chunks(run_dir)
    for f in facts:
        p = f["point"]
        yield (f, req[req["point"] == p] if len(req) else req,
               chunks[chunks["point"] == p] if len(chunks) else chunks)
