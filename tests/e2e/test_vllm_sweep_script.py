"""scripts/vllm_sweep.sh's GPU path, without a GPU or vLLM: fake `vllm` and `nvidia-smi` on PATH.

The fake `vllm serve MODEL --host H --port P --served-model-name N ...` runs the project's embedded
mock server (backends.mock), and `vllm --version` prints a fake version; the fake nvidia-smi prints
the CSV the script asks for. Fast (seconds), so it is NOT marked `vllm` and runs with the unit tests.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from vllm_helpers import REPO, VLLM_SWEEP, child_env, free_port, http_get

FAKE_VLLM = """#!/usr/bin/env bash
# fake vllm: `vllm --version` | `vllm serve MODEL --host H --port P --served-model-name N [ignored...]`
if [ "$1" = --version ]; then echo 0.0.0+fake; exit 0; fi
[ "$1" = serve ] || exit 2
shift; shift
host=127.0.0.1; port=8000; name=mock
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --served-model-name) name=$2; shift 2 ;;
    *) echo "$1" >> "$FAKE_VLLM_ARGS"; shift ;;
  esac
done
cd "$REPO_DIR" && exec "$PYTHON_BIN" -m backends.mock --host "$host" --port "$port" --model "$name"
"""

FAKE_NVSMI = """#!/usr/bin/env bash
echo "name, driver_version, memory.total [MiB]"
echo "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB"
"""


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_vllm_sweep_script_gpu_path_with_fakes(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "vllm", FAKE_VLLM)
    _exe(bin_dir / "nvidia-smi", FAKE_NVSMI)
    out = tmp_path / "out"
    port = free_port()
    env = child_env(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "REPO_DIR": str(REPO),
            "PYTHON_BIN": sys.executable,
            "FAKE_VLLM_ARGS": str(tmp_path / "vllm-args.txt"),
            "INFERPROF_CMD": f"{sys.executable} -m profiler.cli",
            "INFERPROF_NO_IMDS": "1",
        }
    )
    cmd = [
        "bash", str(VLLM_SWEEP), "--model", "org/Some-8B", "--port", str(port),
        "--vllm-args", "--max-model-len 8192 --gpu-memory-utilization 0.9",
        "--", "--concurrency", "1,2", "--requests", "4", "--input-tokens", "16", "--output-tokens", "8",
        "--out", str(out),
    ]  # fmt: skip
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    run_dir = Path(p.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir() and run_dir.parent == out, p.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    server = manifest["server"]
    assert server["device"] == "gpu"
    assert server["vllm_version"] == "0.0.0+fake"  # the mock has no /version: the CLI fallback
    assert server["model"] == "org/Some-8B" and server["served_model_name"] == "org/Some-8B"
    assert server["command"][:3] == ["vllm", "serve", "org/Some-8B"]
    assert server["command"][-4:] == ["--max-model-len", "8192", "--gpu-memory-utilization", "0.9"]
    assert server["vllm_args"] == "--max-model-len 8192 --gpu-memory-utilization 0.9"
    assert "NVIDIA H100 80GB HBM3" in server["nvidia_smi"]
    assert server["nvidia_smi_gpus"] == [
        {"name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54.15", "memory.total [MiB]": "81559 MiB"}
    ]
    assert server["cloud"] is None
    assert manifest["endpoint"]["model"] == "org/Some-8B"
    # the extra vLLM flags reached `vllm serve`
    assert (tmp_path / "vllm-args.txt").read_text().split() == [
        "--max-model-len", "8192", "--gpu-memory-utilization", "0.9"
    ]  # fmt: skip
    # server stopped by the EXIT trap
    try:
        http_get(f"http://127.0.0.1:{port}/health", timeout=2)
        raise AssertionError("server still answers after the script ended")
    except OSError:
        pass


def test_vllm_sweep_script_usage_errors(tmp_path):
    env = child_env({"INFERPROF_NO_IMDS": "1"})
    p = subprocess.run(["bash", str(VLLM_SWEEP), "--", "--concurrency", "1"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert p.returncode == 2 and "--model is required" in p.stderr
    p = subprocess.run(["bash", str(VLLM_SWEEP), "--model", "x", "--bogus"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert p.returncode == 2 and "unknown option --bogus" in p.stderr
