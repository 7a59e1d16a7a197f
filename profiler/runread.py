"""Reading a run folder back: the one points.csv reader, its column helpers, and the raw rows of
each point for the summaries and the reports. Writing is `profiler.runfolder`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from profiler import metrics as m
from profiler import runfolder as rf
from profiler.chunkruns import ChunkColumns, copy_kept, runs_of_rows
from profiler.errors import UserError
from profiler.scratch import scratch

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
    def warmup_frac(self) -> float | None:
        return warmup_of(self.manifest)


def warmup_of(manifest: dict) -> float | None:
    """The run's warm-up share (None: found per point by MSER-5; runs before it default to 0.1)."""
    spec = manifest.get("spec") or {}
    v = spec.get("warmup_frac", 0.1)
    return None if v is None else float(v)


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


def point_rows(run_dir: str | Path, facts: list[dict]) -> Iterator[tuple[dict, pd.DataFrame, object]]:
    """(facts, requests rows, content chunks) of each point, in the order of `facts` (in the appended
    layout only the successful requests' chunks: the only ones a summary uses). In the
    appended layout only one point's files are read at a time, so memory follows the largest
    point, not the run; a folder of the old layout (one file each) is read once.

    A point's chunk times are read into a reused buffer (profiler.scratch): use each point before
    asking for the next one (iterate; never list() this generator)."""
    run_dir = Path(run_dir)
    if appended(run_dir):
        yield from _appended_points(run_dir, facts)
        return
    req = rf.read_table(run_dir, rf.REQUESTS)
    chunks = rf.read_content_chunks(run_dir)
    for f in facts:
        p = f["point"]
        yield (f, req[req["point"] == p] if len(req) else req,
               chunks[chunks["point"] == p] if len(chunks) else chunks)


def appended(run_dir: Path) -> bool:
    """True for the appended layout (folders of per-point files), False for one file each."""
    return (run_dir / rf.REQUESTS).is_dir() or (run_dir / rf.CHUNKS).is_dir()


def _appended_points(run_dir: Path, facts: list[dict]) -> Iterator[tuple[dict, pd.DataFrame, ChunkColumns]]:
    """The points of the appended layout, one at a time. The next point's files are read and
    decoded on a background thread while the caller works on this one (pyarrow and most numpy
    passes release the GIL, so the two cores overlap; one point's decoded files more in memory)."""
    if not facts:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="inferprof-read") as pool:
        ahead = pool.submit(_read_point, run_dir, int(facts[0]["point"]))
        for i, f in enumerate(facts):
            frame, files = ahead.result()
            if i + 1 < len(facts):
                ahead = pool.submit(_read_point, run_dir, int(facts[i + 1]["point"]))
            chunks = _assemble(files)
            del files  # the decoded files: the chunk times are in the scratch buffer now
            yield f, frame, chunks


def _read_point(run_dir: Path, point: int) -> tuple[pd.DataFrame, list[tuple]]:
    """A point's requests frame and, per chunks file, (t_ns, tokens, run requests, run lengths,
    its requests table), from its `point-PPPPP-NNNN.parquet` files. The chunks file of batch N
    holds the content chunks of the requests of batch N, sorted by (request, time), so its runs are
    those requests in id order with `n_content_chunks` rows each; a file whose row count disagrees
    is read with its request column instead.

    A long point is written in hundreds of small parts (one per recorder flush): each file is
    opened once, and one under SMALL_PART_ROWS is decoded on this thread (a thread pool's hand-off
    per file cost more than the file on a loaded machine: 906 parts took 8.5 s, one part 2.8 s)."""
    name = f"point-{point:05d}-*.parquet"
    req_files = sorted((run_dir / rf.REQUESTS).glob(name))
    chunk_files = {f.name: f for f in (run_dir / rf.CHUNKS).glob(name)}
    requests = [_read(pq.ParquetFile(f)) for f in req_files]
    frame = pa.concat_tables(requests).to_pandas() if requests else pd.DataFrame()
    files = [(*_chunk_file(pq.ParquetFile(chunk_files[f.name]), req), req)
             for f, req in zip(req_files, requests, strict=True) if f.name in chunk_files]
    return frame, files


def _assemble(files: list[tuple]) -> ChunkColumns:
    """The point's content chunks of successful requests, copied into one reused buffer
    (profiler.scratch). Only successful requests' chunks are ever used (ChunkRuns); dropping the
    failed ones while copying saves a second pass over the point's chunk times."""
    if not files:
        e = np.empty(0, np.int64)
        return ChunkColumns(e, None, e, e)
    t = scratch("point-chunk-times", sum(f[0].size for f in files), np.int64)
    tokens, run_req, run_len, pos = [], [], [], 0
    for t_file, tok, rr, rl, req in files:
        keep = _succeeded(req, rr)
        start = np.r_[0, np.cumsum(rl)[:-1]].astype(np.int64) if rl.size else rl
        tok_kept = None if tok is None else np.empty(int(rl[keep].sum()), tok.dtype)
        n = copy_kept(t_file, tok, start, rl, keep, t[pos:], tok_kept)
        tokens.append((tok_kept, n))
        run_req.append(rr[keep])
        run_len.append(rl[keep])
        pos += n
    return ChunkColumns(t[:pos], _tokens(tokens), np.concatenate(run_req), np.concatenate(run_len))


def _succeeded(requests: pa.Table, run_request: np.ndarray) -> np.ndarray:
    """Per run: did its request succeed (an empty error)?"""
    ids = requests["request"].to_numpy()
    ok = np.asarray(requests["error"].fill_null("").to_numpy(zero_copy_only=False) == "", dtype=bool)
    return m.lookup(ids[ok], np.ones(int(ok.sum()), bool), run_request, False)


SMALL_PART_ROWS = 1 << 20


def _read(pf: pq.ParquetFile, columns: list[str] | None = None) -> pa.Table:
    return pf.read(columns=columns, use_threads=pf.metadata.num_rows >= SMALL_PART_ROWS)


def _tokens(parts: list[tuple[np.ndarray | None, int]]) -> np.ndarray | None:
    """The files' per-chunk token counts joined (-1 where a file has none), or None when no file has any."""
    if all(tok is None for tok, _ in parts):
        return None
    return np.concatenate([tok if tok is not None else np.full(n, -1, np.int64) for tok, n in parts])


def _chunk_file(pf: pq.ParquetFile, requests: pa.Table):
    """(t_ns, tokens or None, run request ids, run lengths) of one chunks file."""
    meta = pf.metadata
    tok_col = meta.schema.names.index("tokens")
    said = any((rg := meta.row_group(i).column(tok_col).statistics) is None or not rg.has_min_max or rg.max >= 0
               for i in range(meta.num_row_groups))
    n = requests["n_content_chunks"].to_numpy()
    ids = requests["request"].to_numpy()
    order = np.argsort(ids[n > 0], kind="stable")
    run_req, run_len = ids[n > 0][order], n[n > 0][order]
    if run_len.sum() != meta.num_rows:  # not the batch's own chunks: derive the runs from the rows
        rows = _read(pf, ["request", "t_ns", "tokens"])
        t, tok, run_req, run_len, _ = runs_of_rows({k: rows[k].to_numpy() for k in rows.column_names})
        return t, tok, run_req, run_len
    table = _read(pf, ["t_ns", "tokens"] if said else ["t_ns"])
    tok = table["tokens"].to_numpy() if said else None
    return table["t_ns"].to_numpy(), tok, run_req, run_len


def read_telemetry(run_dir: str | Path) -> pd.DataFrame:
    """telemetry.parquet (a file, or a folder of appended parts); empty when absent."""
    path = Path(run_dir) / rf.TELEMETRY
    if path.is_dir():
        files = sorted(path.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
    return rf.read_table(run_dir, rf.TELEMETRY)
