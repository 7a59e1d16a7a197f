"""The appended run-folder layout (requests/chunks/telemetry as folders of per-point Parquet files)
gives the same points.csv, byte for byte, as the single-file layout of the same records; files are
never rewritten; pandas reads each folder whole."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiler import runfolder as rf
from profiler.points import summarize_run

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "scale"))


def _to_appended(old: Path, new: Path, batches: int, seed: int = 0) -> None:
    """Rewrite an old-layout folder with RunWriter: each point in `batches` batches of requests,
    chunk rows shuffled (the writer sorts them)."""
    new.mkdir()
    for name in (rf.MANIFEST, rf.POINTS_RAW):
        shutil.copy(old / name, new / name)
    req = pq.read_table(old / rf.REQUESTS)
    chunks = pq.read_table(old / rf.CHUNKS)
    writer = rf.RunWriter(new)
    rng = np.random.default_rng(seed)
    for p in sorted(set(req["point"].to_pylist())):
        r = req.filter(pa.compute.equal(req["point"], p))
        ids = r["request"].to_numpy()
        for part in np.array_split(rng.permutation(ids), batches):
            rb = r.filter(pa.array(np.isin(ids, part)))
            cb = chunks.filter(pa.array(np.isin(chunks["request"].to_numpy(), part)
                                        & (chunks["point"].to_numpy() == p)))
            writer.add_records(p, rb, cb.take(pa.array(rng.permutation(cb.num_rows))))
    if (old / rf.TELEMETRY).exists():
        tel = pd.read_parquet(old / rf.TELEMETRY)
        (new / rf.TELEMETRY).mkdir()
        for i, part in enumerate(np.array_split(np.arange(len(tel)), 3)):
            tel.iloc[part].to_parquet(new / rf.TELEMETRY / f"part-{i:05d}.parquet", index=False)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
@pytest.mark.parametrize("batches", [1, 3])
def test_appended_layout_gives_the_same_points_csv(name, batches, tmp_path):
    new = tmp_path / "new"
    _to_appended(FIXTURES / name, new, batches)
    assert (new / rf.REQUESTS).is_dir() and (new / rf.CHUNKS).is_dir()
    rf.write_points_csv(new, summarize_run(new))
    assert (new / rf.POINTS_CSV).read_bytes() == (FIXTURES / name / rf.POINTS_CSV).read_bytes()


def test_large_point_selection_path_equals_the_old_layout(tmp_path):
    """Over a million chunk gaps: the percentile selection and the run arithmetic give the bytes
    that the old layout's path (sorting, np.percentile) gives."""
    from make_run import make_run

    new = make_run(4500, tmp_path / "new", tokens=256, points=1, concurrency=64)
    assert len(list((new / rf.CHUNKS).glob("point-00000-*.parquet"))) == 1
    old = tmp_path / "old"
    old.mkdir()
    for name in (rf.MANIFEST, rf.POINTS_RAW):
        shutil.copy(new / name, old / name)
    rf.write_table(old / rf.REQUESTS, [pq.read_table(new / rf.REQUESTS)])
    rf.write_table(old / rf.CHUNKS, [pq.read_table(new / rf.CHUNKS)])
    a, b = summarize_run(new), summarize_run(old)
    rf.write_points_csv(tmp_path, a)
    expected = (tmp_path / rf.POINTS_CSV).read_bytes()
    rf.write_points_csv(tmp_path, b)
    assert (tmp_path / rf.POINTS_CSV).read_bytes() == expected
    assert a.loc[0, "requests"] == 4500 and a.loc[0, "itl_p99_ms"] > a.loc[0, "itl_p50_ms"] > 0


def test_files_are_appended_never_rewritten_and_read_whole(tmp_path):
    run = FIXTURES / "closed_slo_telemetry"
    new = tmp_path / "new"
    new.mkdir()
    req = pq.read_table(run / rf.REQUESTS)
    chunks = pq.read_table(run / rf.CHUNKS)
    writer = rf.RunWriter(new)

    def point(p):
        return (req.filter(pa.compute.equal(req["point"], p)), chunks.filter(pa.compute.equal(chunks["point"], p)))

    writer.add_records(0, *point(0))
    first = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in new.rglob("*.parquet") if f.is_file()}
    assert first and all(f.name.startswith(("point-00000-", "events-00000-")) for f in first)
    writer.add_records(1, *point(1))
    assert {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in first} == first
    assert len(pd.read_parquet(new / rf.REQUESTS)) == req.num_rows
    everything = pd.read_parquet(new / rf.CHUNKS)
    assert len(everything) == chunks.num_rows
    assert everything["content"].sum() == np.asarray(chunks["content"]).sum()
    assert not list(new.rglob(".*"))  # no temporary file left behind
