"""The fault matrix of tests/test_faults_matrix.py as a table: every mock fault kind, the class
the client gave it, and the expected and measured counts per point, for one transport.

    python3 benchmarks/faults/matrix.py [epoll|threads]

Runs the mock (exact schedule, TTFT 30 ms, ITL 4 ms) with every fault as `KIND%N` and one
`inferprof sweep` (concurrency 1 then 4, 90 requests each, TTFT and idle limits 1 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_faults_matrix import MOCK, RULES, SWEEP, N, expected_faults  # noqa: E402

from backends.mock.faults import CLIENT_CLASS  # noqa: E402
from profiler.mockproc import MockProcess  # noqa: E402


def main(transport: str) -> None:
    with tempfile.TemporaryDirectory() as out, MockProcess([*MOCK, *[x for r in RULES for x in ("--fault", r)]]) as m:
        r = subprocess.run([sys.executable, "-m", "profiler.cli", "sweep", "--url", m.url, *SWEEP, "--out", out,
                            "--transport", transport], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert r.returncode == 0, r.stderr
        run_dir = Path(json.loads(r.stdout)["run_dir"])
        req = pd.read_parquet(run_dir / "requests.parquet")
        points = pd.read_csv(run_dir / "points.csv", keep_default_na=False)
    plan = expected_faults(2)
    print(f"transport {transport}: {N} requests per point, points at concurrency 1 and 4\n")
    print("| fault (rule) | client class | faulted requests, point 0 | of them with that class |")
    print("|---|---|---|---|")
    first = req[req["point"] == 0].sort_values("request")
    for rule in RULES:
        kind = rule.split("%")[0]
        hit = [e for e, k in zip(first["error"], plan[0], strict=True) if k == kind]
        print(f"| {kind} (`{rule}`) | `{CLIENT_CLASS[kind]}` | {len(hit)} | {hit.count(CLIENT_CLASS[kind])} |")
    healthy = [e for e, k in zip(first["error"], plan[0], strict=True) if not k]
    print(f"| none | (success) | {len(healthy)} | {healthy.count('')} |")
    print("\n| point | requests | ok | " + " | ".join(f"err_{c}" for c in sorted(set(CLIENT_CLASS.values())))
          + " | expected errors by class | stop_reason |")
    print("|---" * (5 + len(set(CLIENT_CLASS.values()))) + "|")
    for p in (0, 1):
        row = points.iloc[p]
        want = Counter(CLIENT_CLASS[k] for k in plan[p] if k)
        print(f"| {p} | {row['requests']} | {row['ok']} | "
              + " | ".join(str(row[f"err_{c}"]) for c in sorted(set(CLIENT_CLASS.values())))
              + f" | {dict(sorted(want.items()))} | {row['stop_reason'] or '-'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "epoll")
