"""`sweep --ray` on a real local Ray cluster: a head and a second node, each its own `ray start`
on loopback (scripts/ray_local.py), one cluster for the module, stopped in its finalizer."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import cli_helpers
import pandas as pd
import pyarrow.parquet as pq
import pytest

from profiler import runfolder as rf

ROOT = Path(__file__).resolve().parents[1]
BASE_PORT = 6460  # the cluster's ports: 6460-6499 (benchmarks/ray uses 6400-6439)
DEAD_PORT = 6450  # nothing listens here
# Slow decode steps (as tests/test_sweep_mock.py): a 10 ms step dwarfs a loaded 2-core box's jitter.
SWEEP = ["--preset", "tiny-cpu", "--mock-arg=--decode-base-ms=10", "--mock-arg=--decode-per-seq-us=500",
         "--concurrency", "2,4", "--requests", "24", "--input-tokens", "32", "--output-tokens", "16",
         "--no-telemetry", "--no-report", "--json"]


def inferprof(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return cli_helpers.inferprof(*args, env={"RAY_USAGE_STATS_ENABLED": "0", **(env or {})}, timeout=timeout)


def _local_cluster():
    spec = importlib.util.spec_from_file_location("ray_local", ROOT / "scripts" / "ray_local.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LocalCluster


@pytest.fixture(scope="module")
def cluster(request):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'inferprof[ray]')")
    c = _local_cluster()(BASE_PORT, nodes=2)
    request.addfinalizer(c.stop)
    return c.start()


def _sweep(out: Path, *extra: str) -> Path:
    r = inferprof("sweep", *SWEEP, "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    return Path(json.loads(r.stdout)["run_dir"])


def _schema(run_dir: Path) -> dict:
    """Which files a run folder has and the columns of each."""
    files = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    cols = {name: pq.read_schema(next((run_dir / name).glob("*.parquet"))).names
            for name in (rf.REQUESTS, rf.CHUNKS)}
    return {"files": files, "points.csv": list(pd.read_csv(run_dir / rf.POINTS_CSV).columns), **cols}


@pytest.mark.ray
def test_ray_sweep_matches_local_workers(cluster, tmp_path):
    ray_run = _sweep(tmp_path / "ray", "--ray", cluster.address, "--workers", "2")
    local_run = _sweep(tmp_path / "local", "--workers", "2")
    assert _schema(ray_run) == _schema(local_run)

    facts = rf.read_point_facts(ray_run)
    req = pd.read_parquet(ray_run / rf.REQUESTS)
    for f in facts:  # two actors, on two different nodes; every request says which sent it
        nodes = {n["node"] for n in f["nodes"]}
        assert len(nodes) == 2 and not f["nodes_lost"]
        assert set(req.loc[req["point"] == f["point"], "node"]) == nodes
        for n in f["nodes"]:  # one machine, one CLOCK_MONOTONIC: the true offset is 0
            for c in n["clock"]:
                for at in ("start", "end"):
                    assert abs(c[at]["offset_ns"]) <= c[at]["uncertainty_ns"]
    assert (pd.read_parquet(local_run / rf.REQUESTS)["node"] == "").all()

    ray_pts, local_pts = pd.read_csv(ray_run / rf.POINTS_CSV), pd.read_csv(local_run / rf.POINTS_CSV)
    for col in ("requests", "ok", "errors", "output_tokens_total", "concurrency", "workers"):
        assert list(ray_pts[col]) == list(local_pts[col]), col
    # Same figures within noise: the mock's decode step sets ITL; a wide band, not a timing check.
    for a, b in zip(ray_pts["itl_p50_ms"], local_pts["itl_p50_ms"], strict=True):
        assert 0.6 < a / b < 1.6, (a, b)
    assert ray_pts["trusted"].all(), ray_pts["trust_reason"].tolist()

    from profiler.report.html import esc
    from profiler.report.nodes_html import nodes_section

    table = nodes_section(facts, esc)  # the report's "Load per node": a row per point and node
    assert table.count("<tr>") == 1 + 2 * len(facts) and all(n["node"][:12] in table for n in facts[0]["nodes"])
    assert nodes_section(rf.read_point_facts(local_run), esc) == ""


@pytest.mark.ray
def test_lost_actor_marks_the_point_and_the_sweep_goes_on(cluster, tmp_path):
    """An actor killed while point 0 runs: the point keeps the other node's requests and is
    marked; point 1 runs on the actor left (--on-node-loss continue)."""
    import ray
    from rich.console import Console

    from profiler.endpoint import Target, resolve_model
    from profiler.mockproc import MockProcess
    from profiler.spec import SweepSpec
    from profiler.sweep import FixedPlan, run_sweep

    class KillOne(FixedPlan):
        def watch(self, i, load, pool, run_dir):
            def kill(done: int) -> None:
                if i == 0 and done > 0 and len(pool.actors) == 2 and not getattr(self, "killed", False):
                    self.killed = True
                    ray.kill(pool.actors[1])
            return kill

    spec = SweepSpec(mode="concurrency", loads=[2, 2], duration_s=3.0, output_tokens="16", input_tokens="16",
                     workers=2, ray=cluster.address)
    with MockProcess(["--preset", "tiny-cpu", "--decode-base-ms", "10"]) as mock:
        target = Target(url=mock.url, model="", api="chat", backend="openai")
        resolve_model(target)
        run_dir, points = run_sweep(spec, target, tmp_path, Console(file=open(os.devnull, "w")),
                                    plan=KillOne(spec))
    assert not ray.is_initialized()  # the pool closed its connection
    facts = rf.read_point_facts(run_dir)
    assert len(facts) == 2
    assert [x["worker"] for x in facts[0]["nodes_lost"]] == [1]
    assert len(facts[0]["nodes"]) == 1 and facts[1]["workers"] == 1 and not facts[1]["nodes_lost"]
    req = pd.read_parquet(run_dir / rf.REQUESTS)
    assert (req["point"] == 0).sum() > 0  # the node left kept its requests
    assert set(req.loc[req["point"] == 0, "node"]) == {facts[0]["nodes"][0]["node"]}
    assert not points["trusted"].iloc[0] and "lost mid-point" in points["trust_reason"].iloc[0]


def test_ray_unreachable_address_is_one_line(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'inferprof[ray]')")
    r = inferprof("sweep", "--ray", f"127.0.0.1:{DEAD_PORT}", "--concurrency", "1", "--out", str(tmp_path), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no Ray cluster answers" in r.stderr
    assert not any(tmp_path.iterdir())  # failed before the mock or a run folder


def test_ray_missing_is_one_line(tmp_path):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no ray here')\n")
    r = inferprof("sweep", "--ray", "auto", "--concurrency", "1", "--out", str(tmp_path / "out"),
                  env={"PYTHONPATH": str(fake.parent)}, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "pip install 'inferprof[ray]'" in r.stderr
