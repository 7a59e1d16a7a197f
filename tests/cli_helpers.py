"""Running the CLI the way a user does: `python -m profiler.cli ARGS` in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def inferprof(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI from the repository root; `env` entries are added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "profiler.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def start(*args: str, env=None) -> subprocess.Popen:
    """The CLI in the background (to be signalled or killed mid-run)."""
    return subprocess.Popen([sys.executable, "-m", "profiler.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def wait_for(cond, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def facts_lines(out: Path) -> int:
    """Finished points of the run folders under `out`."""
    return sum(len(p.read_text().splitlines()) for p in out.glob("*/points.jsonl"))


def point_files(run_dir: Path, point: int) -> dict[str, bytes]:
    """Every file of a finished point: its parts, and its lines of points.jsonl and points.csv."""
    out = {str(p.relative_to(run_dir)): p.read_bytes()
           for folder in ("requests.parquet", "chunks.parquet")
           for p in sorted((run_dir / folder).glob(f"*-{point:05d}-*.parquet"))}
    out["points.jsonl"] = (run_dir / "points.jsonl").read_bytes().splitlines()[point]
    out["points.csv"] = (run_dir / "points.csv").read_bytes().splitlines()[point + 1]
    return out
