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
import pyarrow as pa
import pyarrow.parquet as pq

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


def point_rows(run_dir: str | Path, facts: list[dict]) -> Iterator[tuple[dict, pd.DataFrame, dict]]:
    """(facts, requests rows, content chunks as column arrays) of each point, in the order of
    `facts`. In the appended layout only one point's files are read at a time, so memory follows
    the largest point, not the run; a folder of the old layout (one file each) is read once."""
    run_dir = Path(run_dir)
    if (run_dir / rf.REQUESTS).is_dir() or (run_dir / rf.CHUNKS).is_dir():
        for f in facts:
            p = int(f["point"])
            yield f, _point_table(run_dir / rf.REQUESTS, p).to_pandas(), _content_columns(
                _point_table(run_dir / rf.CHUNKS, p, CHUNK_COLUMNS))
        return
    req = rf.read_table(run_dir, rf.REQUESTS)
    chunks = rf.read_content_chunks(run_dir)
    for f in facts:
        p = f["point"]
        c = chunks[chunks["point"] == p] if len(chunks) else chunks
        yield (f, req[req["point"] == p] if len(req) else req,
               {k: c[k].to_numpy() for k in ("request", "t_ns", "tokens")} if len(c) else {})


CHUNK_COLUMNS = ["request", "t_ns", "tokens", "content"]


def _point_table(folder: Path, point: int, columns: list[str] | None = None) -> pa.Table:
    files = sorted(folder.glob(f"point-{point:05d}-*.parquet")) if folder.is_dir() else []
    tables = [pq.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables) if tables else pa.table({})


def _content_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """request, t_ns, tokens of the rows that carry generated content."""
    if not table.num_rows:
        return {}
    if "content" in table.column_names:
        table = table.filter(table["content"])
    return {k: table[k].to_numpy() for k in ("request", "t_ns", "tokens")}


def read_telemetry(run_dir: str | Path) -> pd.DataFrame:
    """telemetry.parquet (a file, or a folder of appended parts); empty when absent."""
    path = Path(run_dir) / rf.TELEMETRY
    if path.is_dir():
        files = sorted(path.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
    return rf.read_table(run_dir, rf.TELEMETRY)
