"""The run folder: names, and writing it during a sweep (reading it back: `profiler.runread`).

Records are appended as files that are never rewritten (`RunWriter`); small files (manifest,
points.csv) are replaced atomically (a temp file, then rename). A sweep that is interrupted or
whose server dies keeps every point it finished. `write_table` writes the layout
of earlier versions (one file each), which is still read.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backends.records import REQUEST_COLUMNS, RequestRecord
from profiler.metrics import sorted_by_request_time

MANIFEST = "manifest.json"
POINTS_RAW = "points.jsonl"
REQUESTS = "requests.parquet"
CHUNKS = "chunks.parquet"
TELEMETRY = "telemetry.parquet"
POINTS_CSV = "points.csv"

_INT_COLS = {c for c in REQUEST_COLUMNS if c.endswith("_ns") or c.endswith("_tokens") or c in (
    "point", "request", "worker", "status", "n_events", "n_content_chunks", "bursts", "output_chars")}


def new_run_dir(out: str | os.PathLike) -> Path:
    """results/<UTC timestamp>-<pid>; unique even for two sweeps started in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(out)
    for i in range(1000):
        d = base / (f"{stamp}-{os.getpid()}" + (f"-{i}" if i else ""))
        try:
            d.mkdir(parents=True, exist_ok=False)
            return d
        except FileExistsError:
            continue
    raise OSError(f"cannot create a run folder under {base}")


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0]}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("inferprof", "numpy", "pandas", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = ""
    return out


def start_manifest(run_dir: Path, **fields) -> dict:
    manifest = {"run_id": run_dir.name, "started_at": datetime.now(UTC).isoformat(),
                "started_mono_ns": time.perf_counter_ns(), "versions": versions(), "host": host_info()}
    manifest.update(fields)
    write_json(run_dir / MANIFEST, manifest)
    return manifest


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def append_point_facts(run_dir: Path, facts: dict) -> None:
    with open(run_dir / POINTS_RAW, "a") as f:
        f.write(json.dumps(facts, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_point_facts(run_dir: Path) -> list[dict]:
    path = run_dir / POINTS_RAW
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def records_table(records: list[RequestRecord]) -> pa.Table:
    cols = {c: [getattr(r, c) for r in records] for c in REQUEST_COLUMNS}
    fields = []
    for c in REQUEST_COLUMNS:
        if c == "input_exact":
            fields.append(pa.field(c, pa.bool_()))
        elif c in _INT_COLS:
            fields.append(pa.field(c, pa.int64()))
        else:
            fields.append(pa.field(c, pa.string()))
    return pa.table(cols, schema=pa.schema(fields))


def chunks_table(request_point: list[int], request: list[int], t_ns: list[int], tokens: list[int],
                 content: list[bool] | None = None) -> pa.Table:
    """chunks.parquet: every SSE event (or Triton/gRPC response) of every request, with `content`
    True for those carrying generated content (the ones TTFT, ITL and throughput use)."""
    if content is None:
        content = [True] * len(t_ns)
    return pa.table({"point": pa.array(request_point, pa.int64()), "request": pa.array(request, pa.int64()),
                     "t_ns": pa.array(t_ns, pa.int64()), "tokens": pa.array(tokens, pa.int64()),
                     "content": pa.array(content, pa.bool_())})


def write_table(path: Path, tables: list[pa.Table]) -> None:
    """(Re)write a parquet file from the tables of every point so far."""
    non_empty = [t for t in tables if t.num_rows]
    if not non_empty:
        if not tables:
            return
        non_empty = tables[:1]
    table = pa.concat_tables(non_empty)
    _atomic(path, lambda p: pq.write_table(table, p, compression="zstd"))


def write_points_csv(run_dir: Path, points: pd.DataFrame) -> None:
    _atomic(run_dir / POINTS_CSV, lambda p: points.to_csv(p, index=False, float_format="%.6g"))


def read_content_chunks(run_dir: Path) -> pd.DataFrame:
    """The chunks.parquet rows that carry generated content (all rows in folders without the flag)."""
    chunks = read_table(run_dir, CHUNKS)
    if len(chunks) and "content" in chunks.columns:
        chunks = chunks[chunks["content"]].drop(columns="content").reset_index(drop=True)
    return chunks


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    path = Path(run_dir) / name
    if not path.exists():
        return pd.DataFrame()
    return pq.read_table(path).to_pandas()


class RunWriter:
    """Writes a sweep's records as it goes, by appending files that are never rewritten.

    `requests.parquet/`, `chunks.parquet/` and `telemetry.parquet/` are folders of Parquet files
    (one Parquet dataset each, readable whole by pandas/pyarrow/DuckDB): a point's rows go to
    `point-PPPPP-NNNN.parquet`, telemetry to `part-NNNNN.parquet`. Each file is written under a
    hidden temporary name and renamed, so a reader never sees half a file. A point is finished
    once its line is in points.jsonl (written last).

    Several processes may append to the same point (the sweep's recorders, one per load-generator
    worker): each gives its writer its own `tag`, and its parts are `point-PPPPP-TAG-NNNN.parquet`.
    """

    def __init__(self, run_dir: Path, tag: str = ""):
        self.run_dir = Path(run_dir)
        self.tag = f"{tag}-" if tag else ""
        self._batches: dict[int, int] = {}
        self._telemetry_parts = 0

    def _batch_paths(self, point: int) -> tuple[Path, Path]:
        """The next batch's requests and chunks files: the same name in both folders, never one
        that exists (bounded: the folders hold finitely many)."""
        for folder in (REQUESTS, CHUNKS):
            (self.run_dir / folder).mkdir(exist_ok=True)
        n = self._batches.get(point, 0)
        while True:
            name = f"point-{point:05d}-{self.tag}{n:04d}.parquet"
            if not (self.run_dir / REQUESTS / name).exists() and not (self.run_dir / CHUNKS / name).exists():
                break
            n += 1
        self._batches[point] = n + 1
        return self.run_dir / REQUESTS / name, self.run_dir / CHUNKS / name

    def add_records(self, point: int, requests: pa.Table, chunks: pa.Table) -> None:
        """Append a batch of finished requests and the chunks of exactly those requests. Chunk rows
        are sorted by (request, time); those carrying content go to the batch's `point-*` file
        (what the metrics read), the others (role preludes, usage, [DONE]) to `events-*` beside it."""
        if not requests.num_rows and not chunks.num_rows:
            return
        req_path, chunk_path = self._batch_paths(point)
        _atomic(req_path, lambda p: pq.write_table(requests, p, compression="zstd"))
        if not chunks.num_rows:
            return
        if not sorted_by_request_time(chunks["request"].to_numpy(), chunks["t_ns"].to_numpy()):
            chunks = chunks.sort_by([("request", "ascending"), ("t_ns", "ascending")])
        content = chunks["content"]
        _atomic(chunk_path, lambda p: write_chunks(chunks.filter(content), p))
        others = chunks.filter(pc.invert(content))
        if others.num_rows:
            _atomic(chunk_path.with_name("events" + chunk_path.name[len("point"):]), lambda p: write_chunks(others, p))

    def add_samples(self, samples: list) -> None:
        """Append telemetry samples; the folder exists once telemetry is on, even with no sample."""
        d = self.run_dir / TELEMETRY
        d.mkdir(exist_ok=True)
        if not samples:
            return
        from profiler.telemetry import samples_frame

        frame = samples_frame(samples)
        path = d / f"part-{self._telemetry_parts:05d}.parquet"
        while path.exists():  # a resumed run: parts written before it are never replaced
            self._telemetry_parts += 1
            path = d / f"part-{self._telemetry_parts:05d}.parquet"
        self._telemetry_parts += 1
        _atomic(path, lambda p: frame.to_parquet(p, index=False, compression="zstd"))

    def add_answers(self, point: int, answers: list[tuple]) -> None:
        """Append a batch of eval answers as answers.parquet/point-PPPPP-TAG-NNNN.parquet."""
        d = self.run_dir / ANSWERS
        d.mkdir(exist_ok=True)
        n = 0
        while (path := d / f"point-{point:05d}-{self.tag}{n:04d}.parquet").exists():  # bounded: finite folder
            n += 1
        _atomic(path, lambda p: pq.write_table(answers_table(point, answers), p, compression="zstd"))


# Chunk rows sorted by (request, time): delta encoding stores each arrival time as its difference
# from the previous row, a few bytes, with every nanosecond kept (benchmarks/scale/README.md).
_CHUNK_ENCODING = {"point": "DELTA_BINARY_PACKED", "request": "DELTA_BINARY_PACKED",
                   "t_ns": "DELTA_BINARY_PACKED", "tokens": "DELTA_BINARY_PACKED"}


def write_chunks(chunks: pa.Table, path: Path) -> None:
    pq.write_table(chunks, path, compression="none", use_dictionary=["content"],
                   column_encoding={c: e for c, e in _CHUNK_ENCODING.items() if c in chunks.column_names})


ANSWERS = "answers.parquet"  # eval requests only: their text and finish reason (profiler/quality/)


def answers_table(point: int, answers: list[tuple]) -> pa.Table:
    cols = list(zip(*answers, strict=True))
    return pa.table({"point": pa.array([point] * len(answers), pa.int64()),
                     "request": pa.array(cols[0], pa.int64()), "item": pa.array(cols[1], pa.int64()),
                     "template": pa.array(cols[2], pa.int64()), "text": pa.array(cols[3], pa.string()),
                     "finish_reason": pa.array(cols[4], pa.string())})

