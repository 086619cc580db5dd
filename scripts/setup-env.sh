#!/usr/bin/env bash
# Create (once) the project's virtualenv in .venv and install what is needed.
# Usage: scripts/setup-env.sh [EXTRA]   (EXTRA e.g. "test"; installs .[EXTRA])
# torch is installed first, pinned to the CPU wheel, so pip never pulls a multi-GB
# CUDA build; set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu124)
# to install a CUDA build instead, or TORCH_SPEC to pick another version.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRA=${1:-}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.emsfl-installed${EXTRA:+-$EXTRA}"
# pip's own notices (setuptools' editable-install banner, index warnings) go to a log that is
# shown only when pip fails, so a first run prints nothing a newcomer has to ignore
quiet_pip() {
  local log="$VENV/.pip-install.log"
  if ! "$VENV/bin/python" -m pip "$@" > "$log" 2>&1; then
    cat "$log" >&2
    echo "setup-env: pip $* failed (log above, also in $log)" >&2
    exit 1
  fi
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  torch_args=()
  if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_args=(--index-url "$TORCH_INDEX_URL"); fi
  # numpy with torch: importing torch without it prints a NumPy warning a newcomer would have to ignore
  quiet_pip install -q "${TORCH_SPEC:-torch==2.13.0}" "numpy>=1.26,<3" "${torch_args[@]}"
  "$VENV/bin/python" -c "import torch" # fail early if torch did not install
  target="."
  if [ -n "$EXTRA" ]; then target=".[$EXTRA]"; fi
  quiet_pip install -q -e "$target"
  "$VENV/bin/python" -c "import emsfl_sim, simpy, skyfield, peft, transformers"
  touch "$stamp"
fi
