"""Resuming an interrupted sweep (`inferprof sweep --resume RUN_DIR`).

A point is finished once its line is in points.jsonl (written last, fsynced). Whatever else a
run folder holds for a later point was left by a point that never finished (Ctrl-C before the
point ended, `kill -9`, a reboot): its requests/chunks parts and its spool segments are removed,
and the sweep runs that point again from the start, with the spec, endpoint and workload seeds
of the manifest. Finished points' files are never opened for writing: their requests, chunks and
telemetry parts, their points.jsonl lines and their points.csv rows stay byte for byte.

A capacity search (--find) or a --converge grid goes on too: its plan replays the finished
points' search.json rows to rebuild the history its rule saw (profiler/capacity.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from profiler import runfolder as rf
from profiler.errors import UserError
from profiler.recorder import SPOOL_DIR
from profiler.spec import SweepSpec


@dataclass
class Resume:
    run_dir: Path
    manifest: dict
    spec: SweepSpec
    next_point: int  # the first point without a points.jsonl line
    removed: list[str]  # files of unfinished points that were discarded

    def continue_manifest(self, command: list[str]) -> dict:
        """The manifest, told that the sweep continues here (the old `ended` reason moves into
        the `resumes` entry); written at once."""
        m = dict(self.manifest)
        ended = m.pop("ended", None)
        m.pop("finished_at", None)
        m.setdefault("resumes", []).append({
            "at": datetime.now(UTC).isoformat(), "mono_ns": time.perf_counter_ns(), "command": list(command),
            "from_point": self.next_point, "previous_end": ended, "discarded_files": len(self.removed)})
        rf.write_json(self.run_dir / rf.MANIFEST, m)
        return m


def read_finished_facts(run_dir: Path) -> list[dict]:
    """points.jsonl's whole lines; a last line cut by a crash is not a finished point."""
    path = run_dir / rf.POINTS_RAW
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def open_resume(run_dir: str | Path) -> Resume:
    """Check a run folder can be resumed, and discard what its unfinished point left."""
    run_dir = Path(run_dir)
    if not (run_dir / rf.MANIFEST).exists():
        raise UserError(f"--resume {run_dir}: not a run folder (no {rf.MANIFEST})")
    manifest = rf.read_json(run_dir / rf.MANIFEST)
    spec = SweepSpec.from_dict(manifest.get("spec") or {})
    if (run_dir / rf.REQUESTS).is_file():
        raise UserError(f"--resume {run_dir}: written by an older version (single-file layout); run it again")
    facts = read_finished_facts(run_dir)
    if [int(f["point"]) for f in facts] != list(range(len(facts))):
        raise UserError(f"--resume {run_dir}: points.jsonl does not list points 0..{len(facts) - 1} in order")
    search = (manifest.get("config") or {}).get("find")
    if search:
        from profiler.capacity import read_search

        if (read_search(run_dir) or {}).get("stopped"):
            raise UserError(f"--resume {run_dir}: the search had already ended (search.json has its answer)")
    if not search and len(facts) >= len(spec.loads):  # a search chooses its points as it goes
        raise UserError(f"--resume {run_dir}: every point of the sweep is finished")
    _trim_cut_line(run_dir / rf.POINTS_RAW)
    return Resume(run_dir, manifest, spec, len(facts), discard_unfinished(run_dir, len(facts)))


def _trim_cut_line(path: Path) -> None:
    """Drop a last line cut by a crash, so the next point's line starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())


def discard_unfinished(run_dir: Path, first: int) -> list[str]:
    """Remove the records of points >= `first` (none of them finished), the spool, and temporary
    files of writes a crash cut short. Returns the removed paths, relative to the run folder."""
    removed = []
    for folder in (rf.REQUESTS, rf.CHUNKS):
        for p in sorted((run_dir / folder).glob("*.parquet")) if (run_dir / folder).is_dir() else ():
            kind, _, rest = p.name.partition("-")
            if kind in ("point", "events") and rest[:5].isdigit() and int(rest[:5]) >= first:
                p.unlink()
                removed.append(f"{folder}/{p.name}")
    for folder in (rf.REQUESTS, rf.CHUNKS, rf.TELEMETRY, "."):
        d = run_dir / folder
        for p in sorted(d.glob(".*.tmp")) if d.is_dir() else ():
            p.unlink()
            removed.append(str(p.relative_to(run_dir)))
    spool = run_dir / SPOOL_DIR
    if spool.is_dir():
        for p in sorted(spool.iterdir()):
            p.unlink()
            removed.append(f"{SPOOL_DIR}/{p.name}")
        spool.rmdir()
    return removed
