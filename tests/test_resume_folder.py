"""`--resume` on a run folder, without a server: what counts as finished and what is discarded
(profiler/resume.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.errors import UserError
from profiler.resume import open_resume


def folder(tmp_path: Path) -> Path:
    """A two-point run whose second point never finished (its facts line was cut by a crash),
    with parts of it on disk and a spool segment left behind."""
    run = tmp_path / "run"
    run.mkdir()
    manifest = {"run_id": "run", "spec": {"mode": "concurrency", "loads": [1, 2, 4], "requests": 8}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    for folder in ("requests.parquet", "chunks.parquet"):
        (run / folder).mkdir()
        for name in ("point-00000-w000-0000", "point-00001-w000-0000", "events-00001-w000-0000"):
            (run / folder / f"{name}.parquet").write_bytes(name.encode())
        (run / folder / ".point-00001-w000-0001.parquet.tmp").write_bytes(b"half")
    (run / ".spool").mkdir()
    (run / ".spool" / "point-00001-w000-00000.bin").write_bytes(b"IPS2")
    (run / "points.jsonl").write_bytes(b'{"point": 0, "load": 1}\n{"point": 1, "lo')
    return run


def test_unfinished_point_is_discarded_and_finished_one_kept(tmp_path):
    run = folder(tmp_path)
    kept = {p: p.read_bytes() for p in run.rglob("point-00000-*")}
    r = open_resume(run)
    assert r.next_point == 1 and r.spec.loads == [1, 2, 4] and r.spec.connect_timeout_s == 10.0
    assert sorted(p.name for p in run.rglob("*.parquet") if p.is_file()) == ["point-00000-w000-0000.parquet"] * 2
    assert {p: p.read_bytes() for p in run.rglob("point-00000-*")} == kept
    assert not (run / ".spool").exists() and not list(run.rglob("*.tmp"))
    assert (run / "points.jsonl").read_bytes() == b'{"point": 0, "load": 1}\n'  # the cut line is gone
    assert len(r.removed) == 7
    m = r.continue_manifest(["inferprof", "sweep", "--resume", str(run)])
    assert m["resumes"][0]["from_point"] == 1
    assert json.loads((run / "manifest.json").read_text())["resumes"] == m["resumes"]


def test_folders_that_cannot_be_resumed(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        open_resume(tmp_path)
    run = folder(tmp_path)
    (run / "points.jsonl").write_text('{"point": 0}\n{"point": 1}\n{"point": 2}\n')
    with pytest.raises(UserError, match="every point"):
        open_resume(run)
    (run / "points.jsonl").write_text('{"point": 1}\n')
    with pytest.raises(UserError, match="in order"):
        open_resume(run)
    (run / "manifest.json").write_text(json.dumps({"spec": {"mode": "rate", "loads": [1], "bogus": 1}}))
    with pytest.raises(UserError, match="bogus"):
        open_resume(run)


def test_first_signal_stops_the_point_second_acts_at_once():
    import os
    import signal

    from profiler.stopping import STOP_INTERRUPTED, SweepSignals

    stop = bytearray(1)
    before = signal.getsignal(signal.SIGINT)
    with SweepSignals(stop) as s:
        os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: no KeyboardInterrupt
        assert s.signum == signal.SIGINT and stop[0] == STOP_INTERRUPTED
        assert signal.getsignal(signal.SIGINT) is before  # a second Ctrl-C is Python's own again
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("signum, code", [(2, 130), (15, 143)])
def test_interrupted_sweep_exits_128_plus_the_signal(signum, code, monkeypatch, capsys):
    from profiler import cli
    from profiler.errors import Interrupted

    def stopped(a):
        raise Interrupted(signum)

    monkeypatch.setattr(cli, "cmd_sweep", stopped)
    assert cli.main(["sweep"]) == code
    assert "--resume" in capsys.readouterr().err


def test_an_ended_search_is_not_resumed_and_nothing_is_discarded(tmp_path):
    run = folder(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"] = {"find": "max-goodput"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "search.json").write_text(json.dumps({"probes": [], "stopped": "bracket within tolerance"}))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="already ended"):
        open_resume(run)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing discarded
    (run / "search.json").write_text(json.dumps({"probes": []}))  # still searching: resumable
    assert open_resume(run).next_point == 1
