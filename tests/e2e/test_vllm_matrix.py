"""`inferprof matrix` against the REAL vLLM CPU server: two `max-num-seqs` settings (4, 16) and one
setting vLLM rejects, killed (SIGTERM) after the first cell and resumed. The matrix starts its own
servers (ports from free_port, never the session server's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from vllm_helpers import REPO, VLLM_CPU, child_env, free_port, http_get, tail

pytestmark = pytest.mark.vllm

CELL_TIMEOUT_S = 900


def _cpu(action: str) -> str:
    p = subprocess.run(["bash", str(VLLM_CPU), action], cwd=REPO, capture_output=True, text=True, timeout=1500,
                       stdin=subprocess.DEVNULL, env=child_env())
    assert p.returncode == 0, f"vllm_cpu.sh {action}: {tail(p.stderr)}"
    return p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""


def _matrix_file(tmp: Path, port: int) -> Path:
    _cpu("setup")
    venv_py, model = Path(_cpu("python")), _cpu("model")
    root = venv_py.parents[2]  # .../vllm-cpu
    doc = {
        "name": "seqs", "out": str(tmp / "out"),
        "server": {
            # the command scripts/vllm_cpu.sh runs, as a template
            "command": f"{venv_py.parent / 'vllm'} serve {{model}} --host {{host}} --port {{port}} "
                       "--served-model-name {served_name} --dtype float32 --max-model-len 2048 "
                       "--num-gpu-blocks-override 64 {args}",
            "model": model, "served_name": "tiny-llama", "port": port, "start_timeout": 600, "stop_timeout": 30,
            "env": {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(root / "vllm-cache"),
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
                    "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"},
        },
        "server_cells": [{"max_num_seqs": 4}, {"max_num_seqs": "bogus"}, {"max_num_seqs": 16}],
        "sweep": {"concurrency": [1, 4], "requests": 8, "input_tokens": 32, "output_tokens": 16,
                  "slo": {"ttft_p99": "10s"}, "gpu_price": 1.0, "no_report": True},
    }
    path = tmp / "matrix.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _state(folder: Path) -> dict:
    try:
        return json.loads((folder / "matrix.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(pred, proc: subprocess.Popen, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        assert proc.poll() is None, f"matrix exited early with {proc.returncode}"
        time.sleep(1)
    raise AssertionError("timed out")


def test_matrix_two_settings_failed_cell_and_resume(tmp_path):
    port = int(os.environ.get("VLLM_MATRIX_PORT") or free_port())
    mfile = _matrix_file(tmp_path, port)
    cmd = [sys.executable, "-m", "profiler", "matrix"]
    env = child_env()
    log = open(tmp_path / "matrix-1.log", "w")
    proc = subprocess.Popen([*cmd, str(mfile)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        folder = _wait_for(lambda: next((tmp_path / "out").glob("matrix-seqs-*"), None), proc, 120)
        _wait_for(lambda: (_state(folder).get("cells", {}).get("max_num_seqs=4") or {}).get("status") == "ok",
                  proc, CELL_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)  # killed midway: cell 4 done, the others not
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    first = _state(folder)
    assert rc == 128 + signal.SIGTERM, (tmp_path / "matrix-1.log").read_text()[-3000:]
    assert first["cells"]["max_num_seqs=4"]["status"] == "ok"
    assert first["cells"].get("max_num_seqs=16", {}).get("status") != "ok"
    with pytest.raises(OSError):  # the server under way was stopped with the matrix
        http_get(f"http://127.0.0.1:{port}/health", timeout=2)

    p = subprocess.run([*cmd, "--resume", str(folder)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=2 * CELL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert p.returncode == 3, tail(p.stdout) + tail(p.stderr)  # 3: ran, but a cell failed
    state = _state(folder)
    cells, servers = state["cells"], state["servers"]
    assert cells["max_num_seqs=4"]["started_at"] == first["cells"]["max_num_seqs=4"]["started_at"]  # not re-run
    assert cells["max_num_seqs=bogus"]["status"] == "failed"
    assert "bogus" in cells["max_num_seqs=bogus"]["log_tail"]  # vLLM's own complaint
    assert cells["max_num_seqs=16"]["status"] == "ok"
    for sid, seqs in (("max_num_seqs=4", "4"), ("max_num_seqs=16", "16")):
        s = servers[sid]
        assert s["command"][s["command"].index("--max-num-seqs") + 1] == seqs
        assert s["server_version"].startswith("0.32.0")
        assert 0 < s["start_to_healthy_s"] < s["cold_start_s"]
        assert s["healthy_to_first_token_s"] > 0
        pts = pd.read_csv(Path(cells[sid]["run_dir"]) / "points.csv")
        assert list(pts["load"]) == [1, 4] and (pts["ok"] > 0).all()
    comp = pd.read_csv(folder / "comparison.csv")
    ok = comp[comp["status"] == "ok"]
    assert set(ok["cell"]) == {"max_num_seqs=4", "max_num_seqs=16"}
    assert (ok["max_goodput_tok_per_s"] > 0).all() and (ok["usd_per_1m_output"] > 0).all()
    best = state["comparison"]["best"]["ttft_p99=10s"]
    assert comp.loc[comp["best"], "cell"].tolist() == [best]
    assert best == ok.sort_values("max_goodput_tok_per_s")["cell"].iloc[-1]
    assert f"best cell for SLO ttft_p99=10s: {best}" in p.stderr
    print("cold start", {sid: {k: servers[sid].get(k) for k in ("start_to_healthy_s", "healthy_to_first_token_s",
                                                                   "cold_start_s")} for sid in servers})
