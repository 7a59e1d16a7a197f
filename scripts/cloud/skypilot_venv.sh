#!/usr/bin/env bash
# A venv with SkyPilot (pure Python, ~460 MB with its dependencies) for validating
# scripts/cloud/*.sky.yaml against SkyPilot's own schema, kept apart from the project's
# environment (SkyPilot pins click<8.2, uvicorn<0.36, bcrypt==4.0.1, ...).
#
#   scripts/cloud/skypilot_venv.sh setup    # idempotent; cold: ~6 min on a loaded 2-core box
#   scripts/cloud/skypilot_venv.sh python   # print the venv's python
#
# Lives in ${INFERPROF_CACHE:-$HOME/.cache/inferprof}/skypilot (cache it in CI).
# Users who launch tasks install `pip install 'inferprof[cloud]'` instead.
set -euo pipefail

SKYPILOT_VERSION=0.14.1
ROOT=${INFERPROF_CACHE:-$HOME/.cache/inferprof}/skypilot
VENV=$ROOT/venv
MARKER=$VENV/.inferprof-skypilot-ok
PY=${PYTHON:-python3}

setup() {
  mkdir -p "$ROOT"
  exec 9> "$ROOT/setup.lock"
  command -v flock > /dev/null 2>&1 && flock -w 900 9
  if [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; then return 0; fi
  local t0=$SECONDS
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -q "skypilot==$SKYPILOT_VERSION" >> "$ROOT/pip-install.log" 2>&1; then
    tail -30 "$ROOT/pip-install.log" >&2
    echo "[skypilot_venv] pip install skypilot==$SKYPILOT_VERSION failed (log: $ROOT/pip-install.log)" >&2
    return 1
  fi
  "$VENV/bin/python" -c "from sky.utils import schemas, common_utils" >> "$ROOT/pip-install.log" 2>&1 \
    || { tail -20 "$ROOT/pip-install.log" >&2; return 1; }
  date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
  echo "[skypilot_venv] ready in $((SECONDS - t0)) s: $VENV" >&2
}

case "${1:-}" in
  setup) setup ;;
  python) echo "$VENV/bin/python" ;;
  *) echo "usage: $0 setup|python" >&2; exit 2 ;;
esac
