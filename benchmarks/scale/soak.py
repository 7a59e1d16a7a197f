"""Soak: one long `--duration` point at high load on the mock; memory over time, and what a crash keeps.

    python benchmarks/scale/soak.py --concurrency 256 --duration 60s --out results/soak-60
    python benchmarks/scale/soak.py --concurrency 256 --duration 600s --out results/soak-600
    python benchmarks/scale/soak.py --concurrency 256 --duration 120s --kill-at 60 --out results/soak-kill

Starts the mock server (its own process group), then `inferprof sweep --url MOCK ...` in a new
process group, and every second writes the RSS of the sweep process and each of its descendants
to `rss.csv` (`t_s, pid, role, rss_mb`; roles: sweep, worker, recorder, other) along with the mock's
count of finished requests (`served.csv`, from its `vllm:request_success` counter).

`--kill-at S` sends SIGKILL to the sweep's whole process group S seconds after it started, then
reads `requests.parquet/` of the run folder with pyarrow and counts the requests that ended more
than `--settle` seconds before the kill: on disk, against the mock's count of requests finished by
then, and against the frames left in the run's `.spool/` segments that are not on disk (finished,
never written).

`--repo DIR` runs the sweep from another checkout (e.g. an older version, for a before/after).
A summary is printed as JSON and written to `summary.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from profiler.mockproc import MockProcess  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (one /proc scan)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:  # bounded: each pid is visited once (the tree has no cycles)
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return None


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "sweep"
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return "gone"
    if comm.startswith("inferprof-w"):
        return "worker"
    if comm.startswith("inferprof-rec"):
        return "recorder"
    return "other"  # e.g. multiprocessing's resource tracker


def _served(url: str) -> int | None:
    """Requests the mock finished so far (sum of its vllm:request_success counter)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:request_success") and not line.startswith("#")))


def _spool_frames(spool_dir: Path) -> list[tuple[int, int, int]]:
    """(worker, request id, end_ns) of every whole frame left in the spool segments."""
    from profiler.recorder import decode_frames

    out = []
    for path in sorted(spool_dir.glob("*.bin")) if spool_dir.is_dir() else []:
        worker = int(path.name.split("-")[2][1:])
        items, _ = decode_frames(path.read_bytes())  # a frame cut by the kill is left out
        out.extend((worker, rid, raw.end_ns) for rid, _sched, raw in items)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--duration", default="60s", help="the point's --duration (e.g. 60s, 600s)")
    ap.add_argument("--output-tokens", default="128")
    ap.add_argument("--input-tokens", default="128")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--preset", default="h100-llama3-8b", help="mock preset")
    ap.add_argument("--mock-arg", action="append", default=[], help="extra mock flag, e.g. --mock-arg=--itl-ms=5")
    ap.add_argument("--kill-at", type=float, default=0.0, help="SIGKILL the sweep this many seconds after it started")
    ap.add_argument("--settle", type=float, default=5.0, help="with --kill-at: count requests that ended this long before the kill")
    ap.add_argument("--repo", default=str(ROOT), help="checkout to run the sweep from")
    ap.add_argument("--sweep-arg", action="append", default=[], help="extra sweep flag, e.g. --sweep-arg=--no-telemetry")
    ap.add_argument("--out", default="results/soak")
    a = ap.parse_args()

    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    mock_args = ["--preset", a.preset, *a.mock_arg]
    with MockProcess(mock_args) as mock:
        cmd = [sys.executable, "-m", "profiler", "sweep", "--url", mock.url, "--concurrency", str(a.concurrency),
               "--duration", a.duration, "--input-tokens", a.input_tokens, "--output-tokens", a.output_tokens,
               "--out", str(runs), "--no-report", "--json", *a.sweep_arg]
        if a.workers:
            cmd += ["--workers", str(a.workers)]
        served0 = _served(mock.url) or 0
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=a.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        rss_rows, served_rows = [], []
        kill_ns = 0
        killed = False
        limit = t0 + 3600 * 3  # bounded
        while proc.poll() is None and time.monotonic() < limit:
            t = time.monotonic() - t0
            t_ns = time.perf_counter_ns()  # the clock of the run folder
            for pid in _descendants(proc.pid):
                mb = _rss_mb(pid)
                if mb is not None:
                    rss_rows.append((round(t, 2), t_ns, pid, _role(pid, proc.pid), round(mb, 1)))
            served_rows.append((round(t, 2), time.perf_counter_ns(), (_served(mock.url) or served0) - served0))
            if a.kill_at and t >= a.kill_at:
                kill_ns = time.perf_counter_ns()
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - t)))
        stdout, stderr = proc.communicate(timeout=60)
        wall = time.monotonic() - t0

    with open(out / "rss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "t_ns", "pid", "role", "rss_mb"])
        w.writerows(rss_rows)
    with open(out / "served.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "t_ns", "served"])
        w.writerows(served_rows)
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime) if runs.is_dir() and any(runs.iterdir()) else None
    summary = {"command": cmd, "repo": a.repo, "wall_s": round(wall, 1), "returncode": proc.returncode,
               "run_dir": str(run_dir),
               "rss": _rss_summary(rss_rows, _point_window(run_dir, kill_ns) if run_dir else None)}
    if not killed and proc.returncode:
        summary["stderr"] = stderr.strip().splitlines()[-3:]
    if run_dir is not None:
        summary.update(_folder(run_dir))
    if killed and run_dir is not None:
        summary["kill"] = _after_kill(run_dir, kill_ns, a.settle, served_rows, t0=a.kill_at)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def _point_window(run_dir: Path, kill_ns: int) -> tuple[int, int] | None:
    """(start, end) ns of the point: from points.jsonl, else its first send to the kill."""
    facts = run_dir / "points.jsonl"
    if facts.exists() and facts.read_text().strip():
        f = json.loads(facts.read_text().splitlines()[0])
        return int(f["start_ns"]), int(f.get("stop_ns") or f["end_ns"])
    req = run_dir / "requests.parquet"
    if kill_ns and req.is_dir() and any(req.glob("*.parquet")):
        import pyarrow.parquet as pq

        sends = pq.read_table(req, columns=["send_ns"]).column("send_ns").to_pylist()
        return min(sends), kill_ns
    return None


def _rss_summary(rows, window: tuple[int, int] | None) -> dict:
    """Per role (and all together) over the point, leaving out its first 10 s (start-up): RSS then,
    at the end, the peak, and the trend (least-squares slope, MB per minute)."""
    if window is None:
        return {}
    start, end = window[0] + 10_000_000_000, window[1]
    by_t: dict[int, dict[str, float]] = {}
    for _t, t_ns, _pid, role, mb in rows:
        if start <= t_ns <= end:
            by_t.setdefault(t_ns, {}).setdefault(role, 0.0)
            by_t[t_ns][role] += mb
    if len(by_t) < 2:
        return {}
    times = sorted(by_t)
    out: dict = {"window_s": round((times[-1] - times[0]) / 1e9, 1), "samples": len(times)}
    for role in sorted({r for v in by_t.values() for r in v}) + ["all"]:
        y = [sum(by_t[t].values()) if role == "all" else by_t[t].get(role, 0.0) for t in times]
        x = [(t - times[0]) / 60e9 for t in times]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
        out[role] = {"at_10s_mb": round(y[0], 1), "end_mb": round(y[-1], 1), "peak_mb": round(max(y), 1),
                     "slope_mb_per_min": round(slope, 2)}
    return out


def _folder(run_dir: Path) -> dict:
    req = run_dir / "requests.parquet"
    parts = sorted(req.glob("*.parquet")) if req.is_dir() else []
    facts = run_dir / "points.jsonl"
    lines = facts.read_text().splitlines() if facts.exists() else []
    out = {"request_parts": len(parts), "points_finished": len(lines)}
    if lines:
        f = json.loads(lines[-1])
        out["point_facts"] = {"client": f.get("client"), "recorder": f.get("recorder")}
    if parts:
        import pyarrow.parquet as pq

        t = pq.read_table(req, columns=["end_ns", "error"])
        out["requests_on_disk"] = t.num_rows
        out["requests_ok_on_disk"] = int(sum(1 for e in t.column("error").to_pylist() if e == ""))
    csv_path = run_dir / "points.csv"
    if csv_path.exists():
        import pandas as pd

        p = pd.read_csv(csv_path)
        cols = [c for c in ("requests", "ok", "loop_lag_p99_ms", "client_cpu", "ttft_p99_ms", "output_tok_per_s",
                            "trusted") if c in p.columns]
        out["points_csv"] = p[cols].to_dict("records")
    return out


def _after_kill(run_dir: Path, kill_ns: int, settle_s: float, served_rows, t0: float) -> dict:
    import pyarrow.parquet as pq

    cut = kill_ns - int(settle_s * 1e9)
    req = run_dir / "requests.parquet"
    t = pq.read_table(req, columns=["worker", "request", "end_ns"]) if req.is_dir() else None
    ends = t.column("end_ns").to_pylist() if t is not None else []
    written = set(zip(t.column("worker").to_pylist(), t.column("request").to_pylist(), strict=True)) if t else set()
    on_disk = sum(1 for e in ends if e <= cut)
    spool = _spool_frames(run_dir / ".spool")
    lost = [e for w, rid, e in spool if (w, rid) not in written]
    not_written = sum(1 for e in lost if e <= cut)
    # the mock's count at its last sample no later than the cut, against the rows that ended by then
    before = [r for r in served_rows if r[1] <= cut]
    sample_ns, served = (before[-1][1], before[-1][2]) if before else (0, 0)
    on_disk_by_sample = sum(1 for e in ends if e <= sample_ns)
    return {"kill_at_s": t0, "settle_s": settle_s, "on_disk_total": len(ends),
            "on_disk_ended_before_cut": on_disk,
            "spool_unwritten_ended_before_cut": not_written,
            "kept_of_finished_before_cut": round(on_disk / (on_disk + not_written), 4) if on_disk + not_written else None,
            "mock_sample_s_before_kill": round((kill_ns - sample_ns) / 1e9, 2) if before else None,
            "mock_served_by_sample": served,
            "on_disk_ended_by_sample": on_disk_by_sample,
            "spool_frames_left": len(spool), "spool_frames_not_on_disk": len(lost),
            # how long before the kill the oldest request that never reached disk ended
            "oldest_not_on_disk_s_before_kill": round((kill_ns - min(lost)) / 1e9, 2) if lost else None,
            "newest_on_disk_s_before_kill": round((kill_ns - max(ends)) / 1e9, 2) if ends else None}


if __name__ == "__main__":
    sys.exit(main())
