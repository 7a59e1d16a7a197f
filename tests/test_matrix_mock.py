"""`inferprof matrix` with the project's mock server as the server command: cells side by side on
their own (fake) GPUs and ports, a server that fails to start, the comparison, bad matrix files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from profiler.cli import main
from profiler.matrix.spec import flag_args, grid, parse, server_command, server_settings

REPO = Path(__file__).resolve().parents[1]


def _write(tmp: Path, **over) -> Path:
    doc = {
        "name": "mock", "out": str(tmp / "out"),
        "server": {"command": f"{sys.executable} -m backends.mock --host {{host}} --port {{port}} --model m {{args}}",
                   "port": 0, "start_timeout": 60, "stop_timeout": 5, "gpus_per_cell": 1},
        "server_cells": [{"max_num_seqs": 1}, {"max_num_seqs": "bogus"}, {"max_num_seqs": 8}],
        "sweep": {"concurrency": [4], "requests": 8, "input_tokens": 16, "output_tokens": 8,
                  "slo": {"ttft_p99": "5s"}, "gpu_price": 2.0, "no_report": True, "no_nvml": True},
        "parallel": 2, "gpus": [0, 1], **over,
    }
    doc["server"]["port"] = _free_base()
    path = tmp / "matrix.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _free_base() -> int:
    import socket

    for base in range(8042, 8048, 2):  # this worktree's range; two adjacent ports per matrix
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", base))
                b.bind(("127.0.0.1", base + 1))
                return base
            except OSError:
                continue
    raise AssertionError("no free port pair in 8042-8047")


def test_matrix_side_by_side_failed_cell_and_comparison(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("INFERPROF_NO_IMDS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    path = _write(tmp_path)
    server_cfg = yaml.safe_load(path.read_text())["server"]
    assert main(["matrix", str(path), "--format", "json"]) == 3  # ran; one cell failed
    out = capsys.readouterr()
    folder = next((tmp_path / "out").glob("matrix-mock-*"))
    state = json.loads((folder / "matrix.json").read_text())
    servers, cells = state["servers"], state["cells"]
    assert cells["max_num_seqs=bogus"]["status"] == "failed"
    assert "invalid int value: 'bogus'" in cells["max_num_seqs=bogus"]["log_tail"]
    ran = [servers["max_num_seqs=1"], servers["max_num_seqs=8"]]
    # side by side: different GPUs (CUDA_VISIBLE_DEVICES and NVML telemetry) and ports
    assert sorted(s["env"]["CUDA_VISIBLE_DEVICES"] for s in ran) == ["0", "1"]
    assert {s["port"] for s in ran} == {server_cfg["port"], server_cfg["port"] + 1}
    for sid in ("max_num_seqs=1", "max_num_seqs=8"):
        s, c = servers[sid], cells[sid]
        cell_yaml = yaml.safe_load((folder / "cells" / sid / "sweep.yaml").read_text())
        assert cell_yaml["gpus"] == s["env"]["CUDA_VISIBLE_DEVICES"]
        assert c["status"] == "ok" and s["cold_start_s"] >= s["start_to_healthy_s"] > 0
        assert s["command"][-2:] == ["--max-num-seqs", sid.split("=")[1]]
        manifest = json.loads((Path(c["run_dir"]) / "manifest.json").read_text())
        assert manifest["config"]["gpus"] == cell_yaml["gpus"]  # the sweep's telemetry: this cell's GPU
        assert manifest["server"]["cell"] == sid and manifest["server"]["args"] == s["command"][-2:]
    comp = pd.read_csv(folder / "comparison.csv")
    assert comp["best"].sum() == 1
    # one sequence at a time serves 4 concurrent streams far slower than 8: the mock's batching
    best = comp.loc[comp["best"], "cell"].item()
    assert best == "max_num_seqs=8" == state["comparison"]["best"]["ttft_p99=5s"]
    assert json.loads(out.out)[0]["slo"] == "ttft_p99=5s"
    assert "best cell for SLO ttft_p99=5s: max_num_seqs=8" in out.err
    assert (folder / "compare" / "compare.html").exists()


@pytest.mark.parametrize("doc,words", [
    ({"server_grid": {"max_num_seqs": [1]}, "sever": {}}, "'sever': unknown key"),
    ({"server": {"start_timeout": "soon"}}, "'server.start_timeout'"),
    ({"server_grid": {"a": [1]}, "server_cells": [{"a": 1}]}, "not both"),
    ({"sweep": {"requests": "many"}}, "'requests'"),
    ({"sweep": {"concurency": 4}}, "unknown key 'concurency'"),
    ({"server": {"command": "serve {modle}"}}, "cannot fill the template"),
])  # fmt: skip
def test_bad_matrix_file_is_one_line(doc, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default out folder is ./results: nothing may be made there
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["matrix", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "results").exists()


def test_grid_flags_and_template():
    assert grid({"a": [1, 2], "b": [True, False]}) == [
        {"a": 1, "b": True}, {"a": 1, "b": False}, {"a": 2, "b": True}, {"a": 2, "b": False}]
    assert flag_args({"max_num_seqs": 4, "enable_prefix_caching": False, "enforce_eager": True,
                      "compilation_config": {"level": 0}, "env": {"X": 1}}) == [
        "--max-num-seqs", "4", "--no-enable-prefix-caching", "--enforce-eager", "--compilation-config", '{"level": 0}']
    m = parse({"server": {"model": "org/M 1", "port": 9000}, "server_grid": {"tensor_parallel_size": [1, 2]},
               "sweep": {"requests": 4}, "sweep_grid": {"input_tokens": [128, 1024]}}, "t")
    ss = server_settings(m)
    assert [s.id for s in ss] == ["tensor_parallel_size=1", "tensor_parallel_size=2"]
    assert [c[0] for c in ss[1].sweeps] == ["tensor_parallel_size=2--input_tokens=128",
                                            "tensor_parallel_size=2--input_tokens=1024"]
    assert ss[0].sweeps[1][1] == {"requests": 4, "input_tokens": 1024}
    assert server_command(m, ss[1].settings, 9001) == [
        "vllm", "serve", "org/M 1", "--host", "127.0.0.1", "--port", "9001", "--served-model-name", "org/M 1",
        "--tensor-parallel-size", "2"]


def test_resume_after_sigkill_stops_the_orphaned_server(tmp_path):
    """kill -9 of the matrix's process group leaves its server (own session) running: --resume
    stops it (its pid still runs the recorded command) and finishes the cells."""
    import os
    import signal
    import subprocess
    import time

    path = _write(tmp_path, parallel=1,
                  server_cells=[{"max_num_seqs": 2}, {"max_num_seqs": 4}])
    env = {**os.environ, "INFERPROF_NO_IMDS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "matrix", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pid = None
    try:
        deadline = time.monotonic() + 120
        while pid is None and time.monotonic() < deadline and proc.poll() is None:
            folder = next((tmp_path / "out").glob("matrix-mock-*"), None)
            try:
                rec = json.loads((folder / "matrix.json").read_text())["servers"]["max_num_seqs=2"]
                pid = rec["pid"] if rec.get("status") == "serving" else None
            except (TypeError, OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        assert pid, "the first server never served"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the matrix and its sweep, not the server
        proc.wait(timeout=30)
    os.kill(pid, 0)  # the orphan is alive
    p = subprocess.run([sys.executable, "-m", "profiler", "matrix", "--resume", str(folder)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    state = json.loads((folder / "matrix.json").read_text())
    assert {c["status"] for c in state["cells"].values()} == {"ok"}
    assert state["servers"]["max_num_seqs=2"]["pid"] is None
