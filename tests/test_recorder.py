"""Records reach the run folder while a point runs (profiler/recorder.py): spool frames, recorder
parts, and what a sweep killed mid-point leaves. Real sockets against the mock; no timing asserts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import cli_helpers
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backends.records import RawStream
from profiler import loadgen as lg
from profiler import recorder as rec
from profiler.cli import main as cli_main
from profiler.endpoint import Target, make_codec
from profiler.mockproc import MockProcess
from profiler.runfolder import RunWriter
from workloads.lengths import parse_length
from workloads.requests import build_requests

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = str(ROOT / "tests" / "fixtures" / "tokenizer")  # local: no prompt calibration round trips
MOCK = ["--preset", "tiny-cpu", "--decode-base-ms", "10", "--decode-per-seq-us", "500"]


@pytest.fixture(scope="module")
def mock():
    with MockProcess(MOCK) as m:
        yield m


def _job(mock, n=24, streams=8, output=12) -> lg.PointJob:
    codec = make_codec(Target(url=mock.url, model="mock-llm", api="chat", backend="openai"))
    reqs = build_requests(n, parse_length("16"), parse_length(str(output)), 0)
    return lg.PointJob(point=3, worker=1, endpoint=codec.endpoint, codec=codec, requests=reqs,
                       payloads=[codec.encode(r) for r in reqs], total_specs=n, streams=streams,
                       start_ns=time.perf_counter_ns() + 200_000_000)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> None:
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)])


def test_frames_round_trip_every_field():
    raw = RawStream(send_ns=11, headers_ns=12, end_ns=13, status=206, chunked=True,
                    header_bytes=b"HTTP/1.1 200 OK\r\n\r\n", recv_ns=[20, 21, 22],
                    recv_bytes=[b"a" * 5, b"", b"\xff\x00z"], error="closed", error_detail="cut \u00e9")
    frame = rec.encode_frame(7, 9, raw) + rec.encode_frame(8, 10, RawStream())
    items, used = rec.decode_frames(frame)
    assert used == len(frame) and [(i[0], i[1]) for i in items] == [(7, 9), (8, 10)]
    assert items[0][2] == raw and items[1][2] == RawStream()
    # a frame cut short (a crash mid-write) is left for later, never misread
    items, used = rec.decode_frames(frame[:-3])
    assert len(items) == 1 and used == len(rec.encode_frame(7, 9, raw))


def test_grpc_messages_are_spooled_as_their_bytes():
    class Msg:
        def SerializeToString(self):  # noqa: N802 - protobuf's name
            return b"proto"

    raw = RawStream(recv_ns=[1, 2], recv_bytes=[Msg(), Msg()])
    (item,), _ = rec.decode_frames(rec.encode_frame(0, 0, raw))
    assert item[2].recv_bytes == [b"proto", b"proto"]


def test_triton_grpc_responses_parse_the_same_after_the_spool():
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    from backends.triton.grpc_codec import parse_grpc_stream

    msgs = []
    for text, final in ((b"hello ", False), (b"world", False), (None, True)):
        r = service_pb2.ModelInferResponse(model_name="m", id="r1")
        if text is not None:
            r.outputs.add(name="text_output", datatype="BYTES", shape=[1])
            r.raw_output_contents.append(len(text).to_bytes(4, "little") + text)
        r.parameters["triton_final_response"].bool_param = final
        msgs.append(r)
    raw = RawStream(send_ns=1, headers_ns=10, end_ns=30, status=200, recv_ns=[10, 20, 30], recv_bytes=msgs)
    (item,), _ = rec.decode_frames(rec.encode_frame(5, 1, raw))
    assert parse_grpc_stream(item[2]) == parse_grpc_stream(raw)
    assert parse_grpc_stream(item[2]).text == "hello world"


def test_spooled_point_equals_parsing_in_the_worker(mock, tmp_path):
    """The same streams give the same rows whether parsed in the worker or by a recorder."""
    job = _job(mock)
    memory = lg.run_job(job)
    assert len(memory.records) == 24 and not memory.error
    job = _job(mock)
    job.spool = str(tmp_path / "w")
    spooled = lg.run_job(job)
    assert spooled.spooled == 24 and spooled.records == []
    summary = rec.record_point(rec.RecordJob.of(job, spool=job.spool, run_dir=str(tmp_path)),
                               RunWriter(tmp_path, tag="w001"), until_end=lambda: None)
    assert not summary.error and summary.requests == 24 and not list(tmp_path.glob("w-*.bin"))
    req = pd.read_parquet(tmp_path / "requests.parquet")
    chunks = pd.read_parquet(tmp_path / "chunks.parquet")
    assert sorted(p.name for p in (tmp_path / "requests.parquet").iterdir())[0].startswith("point-00003-w001-")
    # structure equal to the in-memory path (times differ: two separate runs)
    assert (req["error"] == "").all() and (req["worker"] == 1).all() and (req["point"] == 3).all()
    assert sorted(req["request"]) == sorted(r.request for r in memory.records)
    assert req["n_events"].sum() == len(chunks) == len(memory.chunk_t_ns)
    assert int(chunks["content"].sum()) == sum(memory.chunk_content)


def test_recorder_appends_parts_while_the_worker_writes(mock, tmp_path, monkeypatch):
    """A follower that flushes often writes several parts during one point; together they hold
    exactly the parsed streams, each once, across many spool segments, all deleted at the end."""
    monkeypatch.setattr(rec, "FLUSH_S", 0.05)
    monkeypatch.setattr(rec, "SEGMENT_BYTES", 4096)  # a segment every few requests
    job = _job(mock, n=48, streams=4, output=8)
    job.spool = str(tmp_path / "spool" / "w")
    (tmp_path / "spool").mkdir()
    Path(rec.segment(job.spool, 0)).touch()
    done = threading.Event()
    out = {}

    def work():
        out["result"] = lg.run_job(job)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    summary = rec.record_point(rec.RecordJob.of(job, spool=job.spool, run_dir=str(tmp_path)),
                               RunWriter(tmp_path, tag="w001"), until_end=lambda: done.wait(120))
    t.join(60)
    assert out["result"].spooled == 48
    assert not summary.error and summary.requests == 48 and summary.parts >= 2
    assert list((tmp_path / "spool").iterdir()) == []
    parts = sorted((tmp_path / "requests.parquet").glob("point-00003-*.parquet"))
    assert len(parts) == summary.parts
    req = pd.read_parquet(tmp_path / "requests.parquet")
    assert req["request"].is_unique and len(req) == 48
    items = []
    for p in parts:  # each part's chunks belong to that part's requests
        ids = set(pq.read_table(p, columns=["request"]).column("request").to_pylist())
        ch = pq.read_table(tmp_path / "chunks.parquet" / p.name, columns=["request"]).column("request").to_pylist()
        assert set(ch) == ids
        items.append(len(ids))
    assert sum(items) == 48


# Flushes every 0.3 s: a few-second point spans many flush intervals (the default is 2 s).
ENV = {**os.environ, "INFERPROF_RECORD_FLUSH_S": "0.3"}


def inferprof(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cli_helpers.inferprof(*args, env=ENV, timeout=timeout)


def test_long_point_is_written_in_parts_and_report_agrees(mock, tmp_path):
    r = inferprof("sweep", "--url", mock.url, "--concurrency", "8", "--duration", "3s", "--workers", "2",
                  "--input-tokens", "16", "--output-tokens", "12", "--tokenizer", TOKENIZER, "--out", str(tmp_path),
                  "--json", "--no-report", "--no-telemetry")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    parts = sorted((run_dir / "requests.parquet").glob("point-00000-*.parquet"))
    per_worker = Counter(p.name.split("-")[2] for p in parts)
    assert set(per_worker) == {"w000", "w001"} and min(per_worker.values()) >= 2, per_worker
    assert not (run_dir / rec.SPOOL_DIR).exists()
    facts = json.loads((run_dir / "points.jsonl").read_text())
    assert facts["recorder"]["parts"] == len(parts)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert req["request"].is_unique and set(req["worker"]) == {0, 1}
    assert facts["end_ns"] == req["end_ns"].max()
    original = (run_dir / "points.csv").read_text()
    assert cli_main(["report", str(run_dir), "--format", "csv"]) == 0  # `inferprof report` rewrites it
    assert (run_dir / "points.csv").read_text() == original


def test_sweep_killed_mid_point_keeps_what_was_flushed(mock, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "profiler.cli", "sweep", "--url", mock.url, "--concurrency", "8",
         "--duration", "60s", "--input-tokens", "16", "--output-tokens", "12", "--tokenizer", TOKENIZER,
         "--out", str(tmp_path), "--no-report", "--no-telemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV, start_new_session=True)
    seen: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(seen) < 2:  # two flushes inside the point
            time.sleep(0.2)
            for p in tmp_path.glob("*/requests.parquet/point-00000-*.parquet"):
                if p.name not in seen:
                    seen[p.name] = pq.read_table(p).num_rows
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert len(seen) >= 2, "no flush during the point"
    run_dir = next(tmp_path.iterdir())
    req = pd.read_parquet(run_dir / "requests.parquet")  # the whole folder, read as one table
    assert len(req) >= sum(seen.values()) and req["request"].is_unique
    for name, rows in seen.items():  # parts are never rewritten: what was flushed stays
        assert pq.read_table(run_dir / "requests.parquet" / name).num_rows == rows
    assert (req["end_ns"] > 0).all()
    assert not (run_dir / "points.jsonl").exists()  # the point never finished
    # requests that finished after the last flush are still in the spool, not lost from it
    assert list((run_dir / rec.SPOOL_DIR).glob("point-00000-w*.bin"))


def _children_named(pid: int, prefix: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            comm = Path(f"/proc/{d}/comm").read_text().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and comm.startswith(prefix):
            out.append(int(d))
    return out


def test_recorder_that_dies_is_reported_and_finished_points_kept(mock, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "profiler.cli", "sweep", "--url", mock.url, "--concurrency", "4,4",
         "--duration", "4s", "--input-tokens", "16", "--output-tokens", "12", "--tokenizer", TOKENIZER,
         "--out", str(tmp_path), "--no-report", "--no-telemetry"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(tmp_path.glob("*/points.jsonl")):
            time.sleep(0.1)
        recorders = _children_named(proc.pid, "inferprof-rec")
        assert recorders, "no recorder process found"
        for pid in recorders:
            os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, err
    assert "recording failed at point 1" in err and "Traceback" not in err
    run_dir = next(tmp_path.iterdir())
    points = pd.read_csv(run_dir / "points.csv")
    assert points.loc[0, "requests"] > 0
