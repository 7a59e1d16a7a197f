"""Running the CLI the way a user does: `python -m profiler.cli ARGS` in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def inferprof(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI from the repository root; `env` entries are added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "profiler.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
