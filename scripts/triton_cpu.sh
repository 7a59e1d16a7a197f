#!/usr/bin/env bash
# A REAL NVIDIA Triton Inference Server (2.51, bundled in the nvidia-pytriton 0.7.0 wheel) on a
# CPU-only machine, serving our decoupled fake LLM (scripts/triton_stream_server.py), for
# inferprof's Triton tests and for trying `inferprof sweep --backend triton` without a GPU.
#
#   scripts/triton_cpu.sh setup    # own venv with nvidia-pytriton==0.7.0 (idempotent; ~30-60 s cold)
#   scripts/triton_cpu.sh start    # start the fake-LLM server in the background, wait for ready (<= 120 s)
#   scripts/triton_cpu.sh stop     # stop the server started by `start` (process group, bounded)
#   scripts/triton_cpu.sh status   # running? ready? (exit 0 when ready)
#   scripts/triton_cpu.sh python   # print the venv's python (the tests start the server with it)
#
# Everything lives in ${INFERPROF_CACHE:-$HOME/.cache/inferprof}/triton (cache it in CI):
#   venv/          python venv with nvidia-pytriton (never the project's environment; ~370 MB)
#   run/PORT/      server.pid, server.log, pytriton-home/ of the server on that HTTP port
#
# The server answers /v2/health/ready before PyTriton has bound its models: readiness here means
# every model answers /v2/models/NAME/ready.
# Env knobs: TRITON_HTTP_PORT (8021), TRITON_GRPC_PORT (8022), TRITON_METRICS_PORT (8023),
#   TRITON_START_TIMEOUT (120), TTFT_MS (20), ITL_MS (5) -- the fake model's schedule.
set -euo pipefail

PYTRITON_VERSION=0.7.0
CACHE=${INFERPROF_CACHE:-$HOME/.cache/inferprof}
ROOT=$CACHE/triton
VENV=$ROOT/venv
MARKER=$VENV/.inferprof-triton-ok
HTTP_PORT=${TRITON_HTTP_PORT:-8021}
GRPC_PORT=${TRITON_GRPC_PORT:-8022}
METRICS_PORT=${TRITON_METRICS_PORT:-8023}
START_TIMEOUT=${TRITON_START_TIMEOUT:-120}
RUN=$ROOT/run/$HTTP_PORT
PIDFILE=$RUN/server.pid
LOG=$RUN/server.log
URL=http://127.0.0.1:$HTTP_PORT
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}

log() { echo "[triton_cpu] $*" >&2; }

http_ok() {  # http_ok URL -> exit 0 when GET returns 2xx within 2 s
  if command -v curl > /dev/null 2>&1; then
    curl -sf -m 2 -o /dev/null "$1"
  else
    "$PY" -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' "$1" 2> /dev/null
  fi
}

venv_ok() { [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; }

install_venv() {
  local t0=$SECONDS
  log "installing nvidia-pytriton==$PYTRITON_VERSION into $VENV (cold: ~30-60 s, ~370 MB)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # The server side needs only pytriton (it brings numpy and the tritonserver binary); the
  # client side (tritonclient) lives in the project's own environment.
  if ! "$VENV/bin/python" -m pip install -q "nvidia-pytriton==$PYTRITON_VERSION" >> "$ROOT/pip-install.log" 2>&1; then
    tail -30 "$ROOT/pip-install.log" >&2
    log "pip install nvidia-pytriton==$PYTRITON_VERSION failed (log: $ROOT/pip-install.log)"
    return 1
  fi
  "$VENV/bin/python" -c 'import numpy, pytriton.triton; from importlib.metadata import version; print("pytriton", version("nvidia-pytriton"), "numpy", numpy.__version__)' \
    >> "$ROOT/pip-install.log" 2>&1 \
    || { tail -20 "$ROOT/pip-install.log" >&2; log "pytriton venv does not import"; return 1; }
  date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
  log "venv ready in $((SECONDS - t0)) s"
}

setup() {
  mkdir -p "$ROOT"
  # one setup at a time (parallel test sessions may race on a cold cache)
  exec 9> "$ROOT/setup.lock"
  if command -v flock > /dev/null 2>&1; then
    flock -w 600 9 || { log "timed out waiting for $ROOT/setup.lock"; return 1; }
  fi
  venv_ok || install_venv
  exec 9>&-
  log "setup ok: $VENV"
}

pid_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2> /dev/null; }

start() {
  venv_ok || { log "not set up: run '$0 setup' first"; return 1; }
  mkdir -p "$RUN"
  if pid_alive; then
    if http_ok "$URL/v2/health/ready"; then log "already running (pid $(cat "$PIDFILE")) on $URL"; echo "$URL"; return 0; fi
  elif http_ok "$URL/v2/health/ready"; then
    log "port $HTTP_PORT already answers /v2/health/ready but not from a server this script started; pick another TRITON_HTTP_PORT"
    return 1
  fi
  if ! pid_alive; then
    # setsid: the server leads its own process group (tritonserver + python-backend stubs), so
    # `stop` can signal all of it; stdin from /dev/null and SIGINT restored by the server itself.
    PYTRITON_HOME="$RUN/pytriton-home" setsid "$VENV/bin/python" "$HERE/triton_stream_server.py" \
      --http "$HTTP_PORT" --grpc "$GRPC_PORT" --metrics "$METRICS_PORT" > "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    log "started pid $(cat "$PIDFILE") (log: $LOG)"
  fi
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
    if http_ok "$URL/v2/models/fake_llm/ready" && http_ok "$URL/v2/models/failing_llm/ready" \
        && http_ok "$URL/v2/models/vllm_like/ready"; then
      log "Triton ready on $URL (gRPC 127.0.0.1:$GRPC_PORT) after $((SECONDS - t0)) s (pid $(cat "$PIDFILE"))"
      echo "$URL"
      return 0
    fi
    if ! pid_alive; then
      tail -40 "$LOG" >&2
      log "Triton died during startup (log: $LOG)"
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.5
  done
  tail -40 "$LOG" >&2
  log "Triton not ready after $START_TIMEOUT s (log: $LOG)"
  stop
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || { log "not running on port $HTTP_PORT"; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2> /dev/null; then
    # SIGTERM = clean exit (the server maps it to KeyboardInterrupt): PyTriton then removes its
    # workspace. Shutdown takes 6-10 s (exit_timeout_secs=5).
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2> /dev/null; then
      log "pid $pid ignored SIGTERM for 30 s: SIGKILL"
      kill -KILL -- "-$pid" 2> /dev/null || kill -KILL "$pid" 2> /dev/null || true
    fi
  fi
  kill -KILL -- "-$pid" 2> /dev/null || true  # stubs left in the group go too
  rm -f "$PIDFILE"
  log "stopped $pid"
}

status() {
  if pid_alive; then
    if http_ok "$URL/v2/health/ready"; then echo "running pid $(cat "$PIDFILE") ready $URL"; return 0; fi
    echo "running pid $(cat "$PIDFILE") not ready yet $URL"; return 1
  fi
  echo "not running ($URL)"
  if venv_ok; then echo "venv ok: $VENV"; else echo "venv missing: $VENV"; fi
  return 3
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  python) venv_ok || { log "not set up: run '$0 setup' first"; exit 1; }; echo "$VENV/bin/python" ;;
  *) echo "usage: $0 setup|start|stop|status|python" >&2; exit 2 ;;
esac
